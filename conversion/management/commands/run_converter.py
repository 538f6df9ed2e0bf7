import threading

from conversion.services import job_convert
from videomp3 import broker
from videomp3.workers import WorkerCommand


class Command(WorkerCommand):
    help = "Consume the video queue: convert each job's video to an MP3 (the converter role)."
    queue = broker.VIDEO

    def handle_message(self, message: dict, stop: threading.Event) -> str:
        return job_convert(job_id=message["job_id"], stopping=stop)
