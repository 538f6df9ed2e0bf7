"""Conversion leases: a converter claims a queued job for JOB_LEASE_SECONDS, renews the lease while it
works, and ends it as done, failed, released or retried later. Every change is conditional on the lease
owner, so an attempt that lost its job (paused, partitioned, recovered) can change nothing, and each
attempt writes an MP3 of its own."""

import logging
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import storage
from core.backoff import retry_delay
from core.database_now import DatabaseNow, database_now_plus
from uploads.models import Job
from uploads.services.counters import FAILURES, conversion_counted, counters_add
from uploads.services.publishing import job_outcome_on_commit, job_queue_on_commit, mp3_message_publish

logger = logging.getLogger(__name__)


def mp3_file_id_for(job_id, *, attempt: str) -> str:
    """Each conversion attempt stores its MP3 under an id of its own (the job's and the attempt's). Only
    the attempt that marks the job done points the job at its file; one that lost the job meanwhile
    (paused, partitioned, recovered by the sweeper) can only ever delete its own."""
    return f"mp3-{job_id}-{attempt[:12]}"


def mp3_metadata(job_id, *, attempt: str) -> dict:
    """What an attempt's MP3 carries in GridFS, so cleanup can tell a running attempt's file."""
    return {"job_id": str(job_id), "attempt": attempt}


def job_claim_for_conversion(*, job_id, lease_owner: str) -> Job | None:
    """queued -> converting under a lease; None when the job is not waiting (a duplicate message)."""
    claimed = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.CONVERTING,
        started_at=timezone.now(),
        progress=0,
        error="",
        attempts=F("attempts") + 1,
        lease_owner=lease_owner,
        lease_expires_at=_lease_until(),
        retry_at=None,
    )
    return Job.objects.get(id=job_id) if claimed else None


def job_renew_lease(*, job_id, lease_owner: str) -> bool:
    """False when the attempt lost the job: cancelled, or recovered by the sweeper after a stall."""
    return bool(
        Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
            lease_expires_at=_lease_until()
        )
    )


# A converter that is stopping (scaled in, rolled) hands its job back at most this often per job, so
# rollouts and scale-ins cannot restart a long conversion forever. A hand-back counts as a restart in
# `recoveries`, like a dead worker's, toward MAX_CRASH_RECOVERIES; a job restarted once already (either
# way) is finished by the stopping converter instead, within the pod's grace period (k8s/base/converter.yaml).
MAX_HANDBACKS = 1


def job_may_hand_back(job: Job) -> bool:
    """Whether a stopping converter may give this claimed job back, or must finish it before it exits."""
    return job.recoveries < MAX_HANDBACKS


def job_release(*, job_id, lease_owner: str) -> None:
    """converting -> queued at once: the worker hands the job back (shutdown), counted as a restart."""
    with transaction.atomic():
        released = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
            status=Job.Status.QUEUED,
            progress=0,
            recoveries=F("recoveries") + 1,
            lease_owner="",
            lease_expires_at=None,
            published_at=None,
            updated_at=DatabaseNow(),
        )
        if released:
            job_queue_on_commit(job_id)


def job_retry_later(*, job_id, lease_owner: str, reason: str) -> str:
    """A store was unreachable: queue the job again after an exponential backoff, or fail it past the limit."""
    job = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).first()
    if job is None:
        return "lost"
    failures = job.transient_failures + 1
    if failures > settings.MAX_TRANSIENT_RETRIES:
        # The store's own sentence ("try again in a minute") was true for each retry, not for the owner now.
        logger.warning("job %s failed: the file store failed %d times in a row: %s", job_id, failures, reason)
        job_mark_failed(
            job_id=job_id,
            lease_owner=lease_owner,
            sentence=store_failed_sentence(failures),
            transient_failures=failures,
        )
        return "failed"
    delay = retry_delay(failures, base=settings.RETRY_BACKOFF_SECONDS)
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
        status=Job.Status.QUEUED,
        progress=0,
        lease_owner="",
        lease_expires_at=None,
        published_at=None,
        transient_failures=failures,
        retry_at=database_now_plus(delay),
        updated_at=DatabaseNow(),
    )
    logger.warning("job %s will be retried in %d s: %s", job_id, delay, reason)
    return "retrying"


def store_failed_sentence(failures: int) -> str:
    return (
        f"This server could not store or read its files {failures} times in a row while converting this file, "
        "so it stopped trying. Retry this job in a few minutes."
    )


def job_record_input_loudness(*, job_id, lease_owner: str, loudness: dict) -> None:
    """loudnorm's measurement of the input, kept on the job (shown in its detail)."""
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(input_loudness=loudness)


def job_set_progress(*, job_id, lease_owner: str, percent: int) -> None:
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner, progress__lt=percent).update(
        progress=percent
    )


def job_mark_done(
    *,
    job_id,
    lease_owner: str,
    mp3: storage.StoredFile,
    mp3_duration: float | None,
    mp3_chapters: list[dict] | None = None,
) -> bool:
    """converting -> done, and queue the notification; False when this attempt no longer holds the job.
    `mp3_chapters`: the chapters the MP3 carries as read back ([] none; None not known)."""
    now = timezone.now()
    with transaction.atomic():
        finished = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
            status=Job.Status.DONE,
            progress=100,
            mp3_file_id=mp3.file_id,
            mp3_size=mp3.size,
            mp3_duration=mp3_duration,
            mp3_chapters=mp3_chapters,
            finished_at=now,
            error="",
            lease_owner="",
            lease_expires_at=None,
        )
        if finished:
            started_at = Job.objects.filter(id=job_id).values_list("started_at", flat=True).first()
            conversion_counted(mp3_size=mp3.size, started_at=started_at, finished_at=now)
            transaction.on_commit(partial(mp3_message_publish, job_id))
    return bool(finished)


def job_mark_failed(*, job_id, sentence: str, lease_owner: str | None = None, **counters) -> bool:
    jobs = Job.objects.filter(id=job_id, status__in=[Job.Status.QUEUED, Job.Status.CONVERTING])
    if lease_owner is not None:
        jobs = jobs.filter(lease_owner=lease_owner)
    with transaction.atomic():
        failed = jobs.update(
            status=Job.Status.FAILED,
            error=sentence,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
            **counters,
        )
        if failed:
            counters_add({FAILURES: 1})
            job_outcome_on_commit(job_id)  # the owner's "failed" email
    return bool(failed)


def job_other_attempts_discard(*, job_id, kept_mp3_id: str) -> None:
    """The job is done with kept_mp3_id: remove what its earlier attempts left (a partial MP3 of a killed
    converter). An attempt still running elsewhere (woken from a pause) removes its own file anyway."""
    for file_id in storage.file_ids_with_prefix(storage.MP3S, f"mp3-{job_id}") - {kept_mp3_id}:
        if not Job.objects.filter(mp3_file_id=file_id).exists():
            storage.delete(storage.MP3S, file_id)


def job_source_video_discard(*, job: Job) -> None:
    """After a successful conversion a job from before the audio source no longer needs its video,
    unless KEEP_SOURCE_VIDEOS. A newer job's video is stored only with KEEP_SOURCE_VIDEOS, and kept."""
    if settings.KEEP_SOURCE_VIDEOS or not job.video_file_id:
        return
    storage.delete(storage.VIDEOS, job.video_file_id)
    Job.objects.filter(id=job.id).update(video_file_id="")


def _lease_until():
    return database_now_plus(settings.JOB_LEASE_SECONDS)
