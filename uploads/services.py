"""Writes to jobs. Every state change is a conditional update, so a duplicated message or a
second worker can never move a job backwards or finish it twice."""

import logging
import shutil
import tempfile
import unicodedata
import uuid
from contextlib import contextmanager

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversion import ffmpeg
from uploads import storage
from uploads.models import Job
from videomp3 import broker

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 200


class UploadRejected(Exception):
    """The upload is refused; `status` is the HTTP answer and str() the sentence."""

    def __init__(self, status: int, sentence: str, code: str):
        super().__init__(sentence)
        self.status = status
        self.code = code


class JobStateConflict(Exception):
    """The job's state does not allow this action (HTTP 409)."""


def display_filename(name: str) -> str:
    """The uploaded name as safe display text: no path parts, no control characters, capped length."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if not unicodedata.category(char).startswith("C")).strip().strip(".")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:16] if dot else ""
        name = name[: MAX_FILENAME_LENGTH - len(extension) - 1] + ("." + extension if extension else "")
    return name or "upload"


@contextmanager
def _local_path(upload: UploadedFile):
    """A path ffmpeg can open: the spooled temp file, or a copy of a small in-memory upload."""
    if hasattr(upload, "temporary_file_path"):
        yield upload.temporary_file_path()
        return
    with tempfile.NamedTemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".upload") as copy:
        upload.seek(0)
        shutil.copyfileobj(upload, copy, length=1024 * 1024)
        copy.flush()
        yield copy.name


def job_create(*, owner, upload: UploadedFile) -> Job:
    """Probe the upload, store it in GridFS and queue it; nothing is stored when it is refused."""
    if upload.size == 0:
        raise UploadRejected(422, "The file is empty; choose a video or audio file.", "empty_file")
    if upload.size > settings.MAX_UPLOAD_SIZE:
        raise UploadRejected(413, too_large_sentence(), "too_large")
    with _local_path(upload) as path:
        try:
            info = ffmpeg.probe(path)
        except ffmpeg.MediaError as exc:
            raise UploadRejected(422, str(exc), exc.code) from None
        job_id = uuid.uuid4()
        filename = display_filename(upload.name)
        stored = storage.save_path(
            storage.VIDEOS,
            path,
            filename=filename,
            content_type=upload.content_type or "application/octet-stream",
            metadata={"job_id": str(job_id), "owner_id": owner.pk},
        )
    try:
        with transaction.atomic():
            job = Job.objects.create(
                id=job_id,
                owner=owner,
                original_filename=filename,
                size=stored.size,
                content_sha256=stored.sha256,
                container=info.container[:64],
                audio_codec=(info.audio_codecs[0] if info.audio_codecs else "")[:32],
                video_codec=(info.video_codecs[0] if info.video_codecs else "")[:32],
                duration=info.duration,
                video_file_id=stored.file_id,
            )
            broker.publish_on_commit(broker.VIDEO, str(job.id))
    except Exception:
        storage.delete(storage.VIDEOS, stored.file_id)
        raise
    return job


def too_large_sentence() -> str:
    limit = settings.MAX_UPLOAD_SIZE
    human = f"{limit / 1024**3:.1f} GiB" if limit >= 1024**3 else f"{limit / 1024**2:.0f} MiB"
    return f"The file is larger than this server's limit of {human}; trim or compress it and try again."


def mp3_file_id_for(job_id) -> str:
    """The MP3's GridFS id is derived from the job, so a retried conversion replaces rather than adds."""
    return f"mp3-{job_id}"


def job_claim_for_conversion(*, job_id) -> Job | None:
    """queued -> converting; None when the job is gone or not waiting (a duplicate message)."""
    now = timezone.now()
    claimed = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.CONVERTING, started_at=now, progress=0, error="", attempts=F("attempts") + 1
    )
    return Job.objects.get(id=job_id) if claimed else None


def job_release(*, job_id) -> None:
    """converting -> queued: the worker hands the job back (shutdown, or a store was unreachable)."""
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING).update(status=Job.Status.QUEUED, progress=0)


def job_set_progress(*, job_id, percent: int) -> None:
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, progress__lt=percent).update(progress=percent)


def job_mark_done(*, job_id, mp3: storage.StoredFile, mp3_duration: float | None) -> bool:
    """converting -> done, and queue the notification; False when the job was cancelled meanwhile."""
    with transaction.atomic():
        finished = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING).update(
            status=Job.Status.DONE,
            progress=100,
            mp3_file_id=mp3.file_id,
            mp3_size=mp3.size,
            mp3_duration=mp3_duration,
            finished_at=timezone.now(),
            error="",
        )
        if finished:
            broker.publish_on_commit(broker.MP3, str(job_id))
    return bool(finished)


def job_mark_failed(*, job_id, sentence: str) -> bool:
    return bool(
        Job.objects.filter(id=job_id, status__in=[Job.Status.QUEUED, Job.Status.CONVERTING]).update(
            status=Job.Status.FAILED, error=sentence, finished_at=timezone.now()
        )
    )


def job_retry(*, job: Job) -> Job:
    """failed -> queued, and queue it again."""
    if job.status != Job.Status.FAILED:
        raise JobStateConflict(f"Only a failed job can be retried; this one is {job.status}.")
    if not job.video_file_id or not storage.file_exists(storage.VIDEOS, job.video_file_id):
        raise JobStateConflict("The uploaded video is no longer stored, so this job cannot be retried; upload it again.")
    with transaction.atomic():
        updated = Job.objects.filter(id=job.id, status=Job.Status.FAILED).update(
            status=Job.Status.QUEUED, error="", progress=0, finished_at=None, started_at=None
        )
        if not updated:
            raise JobStateConflict("This job changed state meanwhile; reload it and try again.")
        broker.publish_on_commit(broker.VIDEO, str(job.id))
    job.refresh_from_db()
    return job


def job_delete(*, job: Job) -> Job | None:
    """Remove a job and its files. A job being converted is cancelled instead: its converter
    notices, stops ffmpeg and stores nothing; the cancelled row stays until deleted again."""
    cancelled = Job.objects.filter(id=job.id, status=Job.Status.CONVERTING).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now(), error="Cancelled by its owner while converting."
    )
    _job_files_delete(job)
    if cancelled:
        job.refresh_from_db()
        return job
    Job.objects.filter(id=job.id).delete()
    return None


def _job_files_delete(job: Job) -> None:
    if job.video_file_id:
        storage.delete(storage.VIDEOS, job.video_file_id)
    storage.delete(storage.MP3S, mp3_file_id_for(job.id))


def job_source_video_discard(*, job: Job) -> None:
    """After a successful conversion the video is no longer needed, unless KEEP_SOURCE_VIDEOS."""
    if settings.KEEP_SOURCE_VIDEOS or not job.video_file_id:
        return
    storage.delete(storage.VIDEOS, job.video_file_id)
    Job.objects.filter(id=job.id).update(video_file_id="")


def job_claim_notification(*, job_id) -> bool:
    """Record that the notification is being sent; False when it already was (a redelivery)."""
    return bool(
        Job.objects.filter(id=job_id, status=Job.Status.DONE, notified_at__isnull=True).update(notified_at=timezone.now())
    )


def job_unclaim_notification(*, job_id) -> None:
    """The send failed: let a redelivery try again."""
    Job.objects.filter(id=job_id).update(notified_at=None)
