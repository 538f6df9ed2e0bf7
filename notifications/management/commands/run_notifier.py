import threading

from core import broker
from core.workers import WorkerCommand
from notifications.services import email_deliveries_sweep, job_notify
from notifications.webhooks import Dispatcher


class Command(WorkerCommand):
    help = (
        "Consume the mp3 queue: email each job's owner that its MP3 is ready or that it failed, and send "
        "their webhooks from a pool of threads beside it (the notifier role)."
    )
    queue = broker.MP3

    def handle_job(self, job_id: str, *, on_claimed, hand_back: threading.Event) -> bool:
        return job_notify(job_id=job_id)  # a short send: its message is acknowledged when it returns

    def housekeeping(self) -> None:
        # The ready email's retries are published by the converters' sweeper (its state is on the job);
        # the failed email's state is this app's, and so is its sweeper.
        email_deliveries_sweep()

    def start_companions(self, stop: threading.Event) -> None:
        Dispatcher(stop=stop).start()
