"""One conversion: GridFS video -> temp file -> ffmpeg -> temp MP3 -> GridFS, driven by the job row."""

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from conversion import ffmpeg
from uploads import selectors as job_selectors
from uploads import services as job_services
from uploads import storage

logger = logging.getLogger(__name__)

# How often a running conversion asks the database whether its job was cancelled.
CANCEL_CHECK_SECONDS = 1.0


class ConversionHandedBack(Exception):
    """The worker is stopping: the job went back to the queue and the message must be requeued."""


class _CancelWatch:
    """should_cancel for ffmpeg: the worker is stopping, or the job was deleted meanwhile (checked at most once a second)."""

    def __init__(self, job_id, stopping: threading.Event):
        self.job_id = job_id
        self.stopping = stopping
        self.job_cancelled = False
        self._checked_at = 0.0

    def __call__(self) -> bool:
        if self.stopping.is_set():
            return True
        now = time.monotonic()
        if now - self._checked_at >= CANCEL_CHECK_SECONDS:
            self._checked_at = now
            self.job_cancelled = job_selectors.job_is_cancelled(job_id=self.job_id)
        return self.job_cancelled


def _progress_recorder(job_id) -> Callable[[int], None]:
    last = {"percent": -1, "at": 0.0}

    def record(percent: int) -> None:
        # Write at most every second or every 5 %, so progress costs the database little.
        now = time.monotonic()
        if percent == 100 or percent - last["percent"] >= 5 or now - last["at"] >= 1.0:
            job_services.job_set_progress(job_id=job_id, percent=min(percent, 99))
            last.update(percent=percent, at=now)

    return record


def job_convert(*, job_id: str, stopping: threading.Event | None = None) -> str:
    """Convert one job; returns what happened ("done", "failed", "skipped", "cancelled").

    Media errors fail the job with a sentence. A store outage or a stopping worker hands the job
    back to the queue (ConversionHandedBack / StorageError propagate so the message is requeued).
    """
    stopping = stopping or threading.Event()
    close_old_connections()
    job = job_services.job_claim_for_conversion(job_id=job_id)
    if job is None:
        logger.info("job %s is not waiting for conversion; skipping the message", job_id)
        return "skipped"
    logger.info("converting job %s (%s)", job.id, job.original_filename)
    watch = _CancelWatch(job.id, stopping)
    mp3_id = job_services.mp3_file_id_for(job.id)
    try:
        with tempfile.TemporaryDirectory(prefix="videomp3-", dir=settings.CONVERSION_TEMP_DIR) as workdir:
            source = Path(workdir) / "source"
            destination = Path(workdir) / "audio.mp3"
            storage.copy_to_path(storage.VIDEOS, job.video_file_id, source)
            ffmpeg.convert_to_mp3(
                source,
                destination,
                duration=job.duration,
                bitrate_kbps=settings.MP3_BITRATE_KBPS,
                on_progress=_progress_recorder(job.id),
                should_cancel=watch,
            )
            mp3_duration = ffmpeg.media_duration(destination)
            stored = storage.save_path(storage.MP3S, destination, filename=job.mp3_filename, content_type="audio/mpeg", file_id=mp3_id)
    except ffmpeg.FfmpegCancelled:
        if watch.job_cancelled:
            logger.info("job %s was cancelled while converting", job.id)
            return "cancelled"
        job_services.job_release(job_id=job.id)
        raise ConversionHandedBack(str(job.id)) from None
    except ffmpeg.MediaError as exc:
        job_services.job_mark_failed(job_id=job.id, sentence=str(exc))
        logger.info("job %s failed: %s", job.id, exc)
        return "failed"
    except storage.StoredFileNotFound:
        job_services.job_mark_failed(
            job_id=job.id, sentence="The uploaded video is no longer stored; upload it again."
        )
        return "failed"
    except Exception:
        job_services.job_release(job_id=job.id)
        raise
    if not job_services.job_mark_done(job_id=job.id, mp3=stored, mp3_duration=mp3_duration):
        storage.delete(storage.MP3S, mp3_id)  # cancelled while the MP3 was being stored
        return "cancelled"
    job.refresh_from_db()
    job_services.job_source_video_discard(job=job)
    logger.info("job %s done: %d bytes of MP3", job.id, stored.size)
    return "done"
