import threading

from notifications.services import job_notify
from videomp3 import broker
from videomp3.workers import WorkerCommand


class Command(WorkerCommand):
    help = "Consume the mp3 queue: email each job's owner that the MP3 is ready (the notifier role)."
    queue = broker.MP3

    def handle_message(self, message: dict, hand_back: threading.Event) -> bool:
        return job_notify(job_id=message["job_id"])
