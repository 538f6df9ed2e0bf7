"""Reads of jobs. A user only ever sees their own: another user's job is 'not found'."""

import uuid

from django.db.models import QuerySet

from uploads.models import Job


def job_list_for_user(*, user, status: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(owner=user).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def _as_uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def job_get_for_user(*, user, job_id) -> Job | None:
    parsed = _as_uuid(job_id)
    if parsed is None:
        return None
    return Job.objects.filter(owner=user, id=parsed).first()


def job_get_by_mp3_file_id_for_user(*, user, file_id: str) -> Job | None:
    if not file_id or len(file_id) > 64:
        return None
    return Job.objects.filter(owner=user, mp3_file_id=file_id).first()


def job_get(*, job_id) -> Job | None:
    parsed = _as_uuid(job_id)
    return Job.objects.filter(id=parsed).first() if parsed else None


def job_is_cancelled(*, job_id) -> bool:
    """True when the job was cancelled or deleted: one query, asked every second by a running conversion."""
    return not Job.objects.filter(id=job_id).exclude(status=Job.Status.CANCELLED).exists()
