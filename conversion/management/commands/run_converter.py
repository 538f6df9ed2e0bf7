import logging
import threading

from conversion.services import job_convert
from uploads.services import jobs_expire, jobs_sweep
from videomp3 import broker
from videomp3.workers import WorkerCommand

logger = logging.getLogger(__name__)


class Command(WorkerCommand):
    help = "Consume the video queue: convert each job's video to an MP3 (the converter role)."
    queue = broker.VIDEO

    def handle_message(self, message: dict, hand_back: threading.Event) -> str:
        return job_convert(job_id=message["job_id"], hand_back=hand_back)

    def housekeeping(self) -> None:
        counts = jobs_sweep()
        if any(counts.values()):
            logger.info("sweep: %s", counts)
        # Retention runs here too, so no separate cron job is needed; it logs what it deletes.
        jobs_expire()
