import threading

from core import broker
from core.workers import WorkerCommand
from notifications.services import job_notify


class Command(WorkerCommand):
    help = "Consume the mp3 queue: email each job's owner that the MP3 is ready (the notifier role)."
    queue = broker.MP3

    def handle_job(self, job_id: str, *, on_claimed, hand_back: threading.Event) -> bool:
        return job_notify(job_id=job_id)  # a short send: its message is acknowledged when it returns
