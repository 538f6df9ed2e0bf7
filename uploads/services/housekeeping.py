"""Housekeeping that every converter runs beside its work (and management commands run by hand):
retention (expiry) and the cleanup of stored files no job needs."""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from core import storage
from uploads import selectors
from uploads.models import Job
from uploads.services.deletion import JOB_FILE_FIELDS, job_files_delete
from uploads.services.resumable import resumable_uploads_expire

logger = logging.getLogger(__name__)


def jobs_expire(*, now=None) -> dict[str, int]:
    """Retention: delete the files of jobs finished more than RETENTION_DAYS ago and mark them expired.

    Run by `manage.py purge_expired` and by every converter's housekeeping; each expiry is a
    conditional update, so parallel runs (and a concurrent retry) never both act on a job. Files
    a store outage kept are deleted on a later run: expired jobs still naming a file are retried.
    """
    days = settings.RETENTION_DAYS
    counts = {"expired": 0, "files_deleted": 0}
    if days <= 0:
        return counts
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    sentence = (
        f"This job's files were deleted on {now:%Y-%m-%d}: this server keeps finished files for {days} "
        f"day{'s' if days != 1 else ''}. Upload the file again to convert it again."
    )
    finished = Job.objects.filter(status__in=selectors.RETAINED_STATUSES, finished_at__lt=cutoff)
    for job_id in finished.values_list("id", flat=True):
        counts["expired"] += Job.objects.filter(
            id=job_id, status__in=selectors.RETAINED_STATUSES, finished_at__lt=cutoff
        ).update(status=Job.Status.EXPIRED, error=sentence, progress=0)
    no_files = {field: "" for _bucket, field in JOB_FILE_FIELDS}
    for job in Job.objects.filter(status=Job.Status.EXPIRED).exclude(**no_files):
        try:
            job_files_delete(job)
        except storage.StorageError as exc:
            logger.warning("retention: files of job %s stay until the store is back: %s", job.id, exc)
            break
        Job.objects.filter(id=job.id, status=Job.Status.EXPIRED).update(**no_files)
        counts["files_deleted"] += 1
    if any(counts.values()):
        logger.info("retention: %s", counts)
    return counts


def storage_cleanup(*, older_than_seconds: int = 3600) -> dict[str, int]:
    """Remove stored files no job needs: videos, audio sources, covers and MP3s whose job is gone or does not use them,
    and chunks an interrupted write left without a file. Recent files are left alone, since an
    upload or a conversion may be writing them right now."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    counts = {"videos": 0, "sources": 0, "mp3s": 0, "orphan_chunks": 0}
    # Resumable uploads by their own clock (TUS_UPLOAD_EXPIRY_SECONDS), never before it: one still arriving
    # has no job yet, and is no leftover.
    counts["expired_uploads"] = resumable_uploads_expire()
    for file_id, _metadata in storage.files_uploaded_before(storage.VIDEOS, cutoff):
        if not Job.objects.filter(video_file_id=file_id).exists():
            counts["videos"] += storage.delete(storage.VIDEOS, file_id)
    for file_id, _metadata in storage.files_uploaded_before(storage.SOURCES, cutoff):
        if not Job.objects.filter(Q(source_file_id=file_id) | Q(cover_file_id=file_id)).exists():
            counts["sources"] += storage.delete(storage.SOURCES, file_id)
    for file_id, metadata in storage.files_uploaded_before(storage.MP3S, cutoff):
        if metadata.get("attempt"):  # an attempt's MP3 is spared while that attempt still holds its job
            attempt_running = Q(
                id=selectors.job_id_parse(metadata.get("job_id")),
                status=Job.Status.CONVERTING,
                lease_owner=metadata["attempt"],
            )
        else:  # MP3s from before attempt ids: "mp3-<job id>"
            attempt_running = Q(id=_job_id_of_mp3(file_id), status=Job.Status.CONVERTING)
        if not Job.objects.filter(Q(mp3_file_id=file_id) | attempt_running).exists():
            counts["mp3s"] += storage.delete(storage.MP3S, file_id)
    for bucket in (storage.VIDEOS, storage.SOURCES, storage.MP3S, storage.TUS_UPLOADS):
        for file_id in storage.orphan_chunk_file_ids(bucket, cutoff):
            storage.delete(bucket, file_id)
            counts["orphan_chunks"] += 1
    return counts


def _job_id_of_mp3(file_id: str):
    try:
        return uuid.UUID(file_id.removeprefix("mp3-"))
    except ValueError:
        return None
