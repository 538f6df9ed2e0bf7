"""One conversion: the job's audio source (GridFS) -> temp file -> ffmpeg -> temp MP3 -> GridFS, driven by the job row.

The source is the small seekable file the web role extracted at upload (uploads.services), so every
job and option (trim, two-pass loudnorm, track choice, chapters, tags, cover) runs ffmpeg on a local
file. A job queued before the audio source existed reads its stored video the same way.

The attempt claims the job under a lease and acknowledges the message at once: from then on the
database drives recovery (a dead attempt's lease runs out and the sweeper queues the job again),
so no conversion is bound by RabbitMQ's consumer timeout.
"""

import logging
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from django.conf import settings

from conversion import encoding
from core import failpoints, storage, workdirs
from core.media import ffmpeg, probe
from core.renewal import RenewedWhileRunning
from core.timing import PhaseTimer
from uploads import options as job_options
from uploads import selectors as job_selectors
from uploads.services import leases

logger = logging.getLogger(__name__)

# How often a running conversion asks the database whether its job was deleted.
CANCEL_CHECK_SECONDS = 1.0


class ConversionHandedBack(Exception):
    """The worker is stopping: the job went back to the queue."""


class _CancelWatch:
    """should_cancel for ffmpeg: hand the job back (unless it was restarted before: then it is finished),
    the lease was lost, or the job was deleted."""

    def __init__(self, job, lease: RenewedWhileRunning, hand_back: threading.Event):
        self.job_id = job.id
        self.lease = lease
        self.hand_back = hand_back
        self.may_hand_back = leases.job_may_hand_back(job)
        self.job_cancelled = False
        self._checked_at = 0.0
        self._finishing_logged = False

    def __call__(self) -> bool:
        if self.lease.lost.is_set():
            return True
        if self.hand_back.is_set():
            if self.may_hand_back:
                return True
            if not self._finishing_logged:
                self._finishing_logged = True
                logger.info("job %s was restarted before: finishing it before this worker exits", self.job_id)
        now = time.monotonic()
        if now - self._checked_at >= CANCEL_CHECK_SECONDS:
            self._checked_at = now
            self.job_cancelled = job_selectors.job_is_cancelled(job_id=self.job_id)
        return self.job_cancelled


def _progress_recorder(job_id, lease_owner: str) -> Callable[[int], None]:
    last = {"percent": -1, "at": 0.0}

    def record(percent: int) -> None:
        # Write at most every second or every 5 %, so progress costs the database little.
        now = time.monotonic()
        if percent - last["percent"] >= 5 or now - last["at"] >= 1.0:
            leases.job_set_progress(job_id=job_id, lease_owner=lease_owner, percent=min(percent, 99))
            last.update(percent=percent, at=now)

    return record


def _limits_for(job) -> ffmpeg.ChildLimits:
    return ffmpeg.ChildLimits.for_duration(
        job.duration,
        base_seconds=settings.FFMPEG_TIME_LIMIT_BASE,
        seconds_per_second=settings.FFMPEG_TIME_LIMIT_FACTOR,
        memory_mb=settings.FFMPEG_MEMORY_LIMIT_MB,
    )


def _job_options(job) -> job_options.JobOptions:
    if not job.options:  # jobs from before per-job options, and POST /upload
        return job_options.default_options(default_bitrate=settings.MP3_BITRATE_KBPS)
    return job_options.JobOptions.from_stored(job.options)


def _measure_loudness(job, owner: str, source: Path, *, should_cancel, limits) -> dict | None:
    """loudnorm pass 1 when the job normalizes: measure the audio that will be converted, and record it."""
    options = _job_options(job)
    if not options.normalize:
        return None
    input_args, output_args = encoding.loudness_analysis_args(
        options, audio_streams=job.audio_streams, duration=job.duration
    )
    measured = ffmpeg.measure_loudness(
        source, input_args=input_args, output_args=output_args, should_cancel=should_cancel, limits=limits
    )
    loudness = {key: float(value) for key, value in measured.items()}
    leases.job_record_input_loudness(job_id=job.id, lease_owner=owner, loudness=loudness)
    return loudness


def _encoding_for(job, *, loudness: dict | None) -> ffmpeg.Encoding:
    return encoding.encoding_for(
        _job_options(job),
        audio_streams=job.audio_streams,
        duration=job.duration,
        source_tags=job.source_tags,
        filename_title=job.mp3_filename.removesuffix(".mp3"),
        loudness=loudness,
    )


def _written_chapters(job, mp3: Path) -> list[dict] | None:
    """The chapters the MP3 carries, read back for the podcast feed; None (not known) when they cannot be
    read, which costs the feed its chapters and never the conversion."""
    if not _job_options(job).chapters:
        return []
    try:
        return probe.chapters(mp3)
    except ffmpeg.MediaError as exc:
        logger.warning("job %s: the MP3's chapters could not be read back: %s", job.id, exc)
        return None


def _download_source(job, workdir: Path) -> Path:
    """The job's audio source (or, for a job from before it, its video) as a local file."""
    source = job_selectors.job_conversion_source(job=job)
    if source is None:
        raise storage.StoredFileNotFound(storage.NOT_FOUND)
    path = workdir / "source"
    storage.copy_to_path(*source, path)
    return path


def _cover(job, encoding, source: Path, workdir: Path, *, limits) -> Path | None:
    """The cover frame to embed, for videos (audio files get no cover); None when off or there is none.

    The web role grabbed it at upload; a job from before that grabs it from its stored video now."""
    at = job_options.cover_time(_job_options(job), duration=job.duration)
    if at is None or not job.video_codec or encoding.audio_map is None:
        return None
    destination = workdir / "cover.jpg"
    if job.cover_file_id:
        storage.copy_to_path(storage.SOURCES, job.cover_file_id, destination)
        return destination
    if job.source_file_id:
        return None  # the upload had no frame at that time
    if not ffmpeg.grab_frame(source, destination, at=at, container=job.container, limits=limits):
        logger.info("job %s: no video frame at %.3f s, so the MP3 gets no cover", job.id, at)
        return None
    return destination


def job_convert(
    *, job_id: str, on_claimed: Callable[[], None] = lambda: None, hand_back: threading.Event | None = None
) -> str:
    """Convert one job; returns "done", "failed", "retrying", "skipped", "cancelled" or "lost".

    `on_claimed()` is called once the claim commits: from then on the database drives recovery.
    Media errors fail the job with a sentence. An unreachable store queues it again with backoff.
    A set `hand_back` (the worker is shutting down) stops ffmpeg and queues the job again, once per job
    (leases.MAX_HANDBACKS); a job restarted before is finished instead.
    Raises Job.DoesNotExist for an id that names no job (the worker dead-letters its message).
    """
    hand_back = hand_back or threading.Event()
    job_selectors.job_id_require(job_id)
    owner = uuid.uuid4().hex
    job = leases.job_claim_for_conversion(job_id=job_id, lease_owner=owner)
    if job is None:
        job_selectors.job_require(job_id=job_id)
        logger.info("job %s is not waiting for conversion; skipping it", job_id)
        return "skipped"
    failpoints.reached("claimed", job.id)
    on_claimed()
    logger.info("converting job %s (%s), attempt %d", job.id, job.original_filename, job.attempts)
    # Renewed from a thread while the attempt works; `lost` once the job was taken away (deleted, or
    # recovered by the sweeper after this worker stalled).
    lease = RenewedWhileRunning(
        partial(leases.job_renew_lease, job_id=job.id, lease_owner=owner),
        every=max(1.0, settings.JOB_LEASE_SECONDS / 3),
        name=f"the lease of job {job.id}",
    )
    with lease:
        return _convert_claimed(job, owner, lease, hand_back)


def _convert_claimed(job, owner: str, lease: RenewedWhileRunning, hand_back: threading.Event) -> str:
    watch = _CancelWatch(job, lease, hand_back)
    mp3_id = leases.mp3_file_id_for(job.id, attempt=owner)
    # queue: from the upload's commit to this claim.
    timer = PhaseTimer(queue=max(0.0, (job.started_at - job.created_at).total_seconds()))
    try:
        with workdirs.locked_temp_dir("convert", parent=settings.CONVERSION_TEMP_DIR) as workdir:
            destination = Path(workdir) / "audio.mp3"
            failpoints.reached("reading", job.id)
            with timer.phase("download"):
                source = _download_source(job, Path(workdir))
            failpoints.reached("converting", job.id)
            limits = _limits_for(job)
            with timer.phase("loudness"):
                loudness = _measure_loudness(job, owner, source, should_cancel=watch, limits=limits)
            encoding = _encoding_for(job, loudness=loudness)
            with timer.phase("download"):
                cover = _cover(job, encoding, source, Path(workdir), limits=limits)
            with timer.phase("encode"):
                mp3_duration = ffmpeg.convert_to_mp3(
                    source,
                    destination,
                    duration=job.duration,
                    options=encoding,
                    cover=cover,
                    on_progress=_progress_recorder(job.id, owner),
                    should_cancel=watch,
                    limits=limits,
                )
                if mp3_duration is None:
                    mp3_duration = probe.media_duration(destination)
                mp3_chapters = _written_chapters(job, destination)
            failpoints.reached("writing", job.id)
            with timer.phase("store"):
                stored = storage.save_path(
                    storage.MP3S,
                    destination,
                    filename=job.mp3_filename,
                    content_type="audio/mpeg",
                    file_id=mp3_id,
                    metadata=leases.mp3_metadata(job.id, attempt=owner),
                )
    except ffmpeg.FfmpegCancelled:
        if watch.job_cancelled or lease.lost.is_set():
            logger.info("job %s was cancelled or taken over while converting", job.id)
            return "cancelled"
        leases.job_release(job_id=job.id, lease_owner=owner)
        raise ConversionHandedBack(str(job.id)) from None
    except ffmpeg.MediaError as exc:
        leases.job_mark_failed(job_id=job.id, lease_owner=owner, sentence=str(exc))
        # The owner reads the sentence; ffmpeg's own words are for whoever runs the server.
        logger.warning("job %s failed (%s): %s ffmpeg said: %s", job.id, exc.code, exc, exc.ffmpeg_said)
        return "failed"
    except storage.StoredFileNotFound:
        leases.job_mark_failed(
            job_id=job.id, lease_owner=owner, sentence="The uploaded file is no longer stored; upload it again."
        )
        return "failed"
    except storage.StorageError as exc:
        return leases.job_retry_later(job_id=job.id, lease_owner=owner, reason=str(exc))
    if not leases.job_mark_done(
        job_id=job.id, lease_owner=owner, mp3=stored, mp3_duration=mp3_duration, mp3_chapters=mp3_chapters
    ):
        storage.delete(storage.MP3S, mp3_id)  # only this attempt's own file
        logger.info("job %s was cancelled or taken over while its MP3 was stored; this attempt's MP3 removed", job.id)
        return "cancelled"
    failpoints.reached("committed", job.id)
    logger.info("conversion timings job=%s %s", job.id, timer.summary())
    leases.job_other_attempts_discard(job_id=job.id, kept_mp3_id=mp3_id)
    job.refresh_from_db()
    leases.job_source_video_discard(job=job)
    logger.info("job %s done: %d bytes of MP3", job.id, stored.size)
    return "done"
