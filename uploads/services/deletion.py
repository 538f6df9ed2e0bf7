"""Deleting a job, and releasing the files it names once the deletion commits (shared files, from dedup,
go with the last job naming them)."""

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from core import storage
from uploads.models import Job

logger = logging.getLogger(__name__)


# Where each file a job names is stored. Dedup lets jobs share files: a file goes with the last job naming it.
JOB_FILE_FIELDS = (
    (storage.VIDEOS, "video_file_id"),
    (storage.SOURCES, "source_file_id"),
    (storage.SOURCES, "cover_file_id"),
    (storage.MP3S, "mp3_file_id"),
)


def job_delete(*, job: Job) -> Job | None:
    """Remove a job and its files. A job being converted is cancelled instead: its converter
    notices, stops ffmpeg and stores nothing; the cancelled row stays until deleted again.

    A cancelled job keeps its audio source and cover, so it can be retried or converted again with
    other options without a new upload; deleting it again removes them."""
    with transaction.atomic():
        # Locked, so a new upload that would share its MP3 (dedup) waits and then finds it gone.
        job = Job.objects.select_for_update().filter(id=job.id).first() or job
        cancelled = Job.objects.filter(id=job.id, status=Job.Status.CONVERTING).update(
            status=Job.Status.CANCELLED,
            finished_at=timezone.now(),
            error="Cancelled by its owner while converting.",
            lease_owner="",
            lease_expires_at=None,
        )
        if cancelled:
            return Job.objects.get(id=job.id)
        Job.objects.filter(id=job.id).delete()  # its files go after the commit (job_row_deleted)
    return None


def job_row_deleted(sender, instance: Job, **kwargs) -> None:
    """post_delete of a Job, however it went (the API, the admin, a user deleted with all their jobs):
    its files are released once the deletion commits."""
    transaction.on_commit(partial(job_files_release, instance))


def job_files_release(job: Job) -> None:
    """Delete the files a deleted or cancelled job named, each unless a live job still names it.

    Run after the commit that let go of them: of two jobs sharing a file (dedup) deleted at the same
    moment, the one that commits last then sees the file free, where inside their transactions
    MariaDB's REPEATABLE READ would show each of them the other. A store failure leaves the files to
    cleanup_storage, which removes what no job names."""
    try:
        job_files_delete(job)
    except storage.StorageError as exc:
        logger.warning("the files of job %s stay until the storage cleanup: %s", job.id, exc)


def job_files_delete(job: Job) -> None:
    """Delete the job's files, each unless another job that is not expired names it (dedup): the last one
    deletes it. Its attempts' MP3s go too, for what an interrupted or overtaken conversion left."""
    others = Job.objects.exclude(id=job.id).exclude(status=Job.Status.EXPIRED)
    for bucket, field in JOB_FILE_FIELDS:
        file_ids = {getattr(job, field)}
        if field == "mp3_file_id":  # and whatever its attempts wrote (and the id MP3s had before attempt ids)
            file_ids |= storage.file_ids_with_prefix(bucket, f"mp3-{job.id}")
        for file_id in file_ids - {""}:
            if not others.filter(**{field: file_id}).exists():
                storage.delete(bucket, file_id)
