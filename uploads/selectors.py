"""Reads of jobs. A user only ever sees their own: another user's job is 'not found'."""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, QuerySet

from core import storage
from uploads.models import Job, MetricCounter


def job_list_for_user(*, user, status: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(owner=user).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def job_id_parse(value) -> uuid.UUID | None:
    """The job id in value, or None when it cannot be one (the API answers 400 for those)."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def job_get_for_user(*, user, job_id) -> Job | None:
    parsed = job_id_parse(job_id)
    if parsed is None:
        return None
    return Job.objects.filter(owner=user, id=parsed).first()


def job_list_for_user_by_ids(*, user, job_ids) -> list[Job]:
    """The user's jobs among job_ids (parsed UUIDs); another user's are left out, as unknown ones are."""
    return list(Job.objects.filter(owner=user, id__in=list(job_ids)))


def job_get_by_mp3_file_id_for_user(*, user, file_id: str) -> Job | None:
    if not file_id or len(file_id) > 64:
        return None
    return Job.objects.filter(owner=user, mp3_file_id=file_id).first()


def job_get(*, job_id) -> Job | None:
    parsed = job_id_parse(job_id)
    return Job.objects.filter(id=parsed).first() if parsed else None


def job_id_require(value) -> uuid.UUID:
    """The job id in value, or Job.DoesNotExist: a message whose id can never name a job (the worker
    dead-letters it once instead of retrying it)."""
    parsed = job_id_parse(value)
    if parsed is None:
        raise Job.DoesNotExist(f"job_id {str(value)[:64]!r} is not a UUID")
    return parsed


def job_require(*, job_id) -> Job:
    """The job, or Job.DoesNotExist naming it."""
    job = job_get(job_id=job_id)
    if job is None:
        raise Job.DoesNotExist(f"no job {job_id}")
    return job


def job_is_cancelled(*, job_id) -> bool:
    """True when the job was cancelled or deleted: one query, asked every second by a running conversion."""
    return not Job.objects.filter(id=job_id).exclude(status=Job.Status.CANCELLED).exists()


def job_count_in_progress(*, user) -> int:
    """Jobs of this user waiting for or under conversion: what QUOTA_QUEUED_JOBS_PER_USER limits."""
    return Job.objects.filter(owner=user, status__in=[Job.Status.QUEUED, Job.Status.CONVERTING]).count()


def user_stored_bytes(*, user) -> int:
    """Bytes this user keeps in GridFS, what QUOTA_BYTES_PER_USER limits: each audio source, cover and
    MP3 (and video, with KEEP_SOURCE_VIDEOS) at its stored size, once however many jobs share it (dedup)."""
    jobs = Job.objects.filter(owner=user)
    total = 0
    for file_field, size_field in (
        ("video_file_id", "size"),
        ("source_file_id", "source_size"),
        ("cover_file_id", "cover_size"),
        ("mp3_file_id", "mp3_size"),
    ):
        sizes = dict(jobs.exclude(**{file_field: ""}).values_list(file_field, size_field).distinct())
        total += sum(size or 0 for size in sizes.values())
    return total


def job_conversion_source(*, job: Job) -> tuple[str, str] | None:
    """(GridFS bucket, file id) of what converting this job reads: its audio source, or for a job from
    before the audio source, its uploaded video. None when neither is stored."""
    if job.source_file_id:
        return storage.SOURCES, job.source_file_id
    if job.video_file_id:
        return storage.VIDEOS, job.video_file_id
    return None


# Finished jobs whose files retention deletes: a cancelled one keeps its audio source to be converted again.
RETAINED_STATUSES = (Job.Status.DONE, Job.Status.FAILED, Job.Status.CANCELLED)


def job_expires_at(*, job: Job) -> datetime | None:
    """When retention deletes this job's files; None when they are kept (unfinished job, or RETENTION_DAYS=0)."""
    days = settings.RETENTION_DAYS
    if days <= 0 or job.finished_at is None or job.status not in RETAINED_STATUSES:
        return None
    return job.finished_at + timedelta(days=days)


def user_next_expiry(*, user) -> datetime | None:
    """When retention next frees some of this user's stored bytes (the Retry-After of a storage-quota refusal)."""
    if settings.RETENTION_DAYS <= 0:
        return None
    oldest = (
        Job.objects.filter(owner=user, status__in=RETAINED_STATUSES, finished_at__isnull=False)
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    return oldest + timedelta(days=settings.RETENTION_DAYS) if oldest else None


# --- counts for /metrics


def job_counts_by_status() -> dict[str, int]:
    """How many jobs are in each state now, every state present."""
    counts = dict.fromkeys(Job.Status.values, 0)
    for row in Job.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def metric_counters() -> dict[str, int]:
    """Every cluster-wide counter by name (uploads.services.counters); one never used reads as absent."""
    return dict(MetricCounter.objects.values_list("name", "value"))
