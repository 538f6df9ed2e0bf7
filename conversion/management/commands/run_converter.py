import logging
import threading
import time

from django.conf import settings

from conversion.services import job_convert
from core import broker
from core.workers import WorkerCommand
from uploads.services.housekeeping import jobs_expire, storage_cleanup
from uploads.services.recovery import jobs_sweep

logger = logging.getLogger(__name__)


class Command(WorkerCommand):
    help = "Consume the video queue: convert each job's video to an MP3 (the converter role)."
    queue = broker.VIDEO
    storage_cleaned_at = float("-inf")

    def handle_job(self, job_id: str, *, on_claimed, hand_back: threading.Event) -> str:
        return job_convert(job_id=job_id, on_claimed=on_claimed, hand_back=hand_back)

    def housekeeping(self) -> None:
        counts = jobs_sweep()
        if any(counts.values()):
            logger.info("sweep: %s", counts)
        # Retention and storage cleanup run here too, so no cron job is needed; each logs what it deletes.
        jobs_expire()
        if time.monotonic() - self.storage_cleaned_at >= settings.STORAGE_CLEANUP_INTERVAL_SECONDS:
            self.storage_cleaned_at = time.monotonic()
            counts = storage_cleanup(older_than_seconds=settings.STORAGE_CLEANUP_MIN_AGE_SECONDS)
            if any(counts.values()):
                logger.info("storage cleanup: %s", counts)
