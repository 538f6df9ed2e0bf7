"""Recovery: the sweeper that re-queues what a crash, a broker outage or a lost message left behind,
the retry of a failed or cancelled job by its owner, and converting a job's stored audio again."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services import user_lock
from core import broker, storage
from core.database_now import DatabaseNow, database_now_plus
from uploads import options as job_options
from uploads import selectors
from uploads.models import Job
from uploads.services import intake
from uploads.services.counters import FAILURES, counters_add
from uploads.services.leases import job_source_video_discard
from uploads.services.notification_claims import notification_due
from uploads.services.publishing import (
    dead_letter_publish,
    job_outcome_on_commit,
    job_queue_on_commit,
    mp3_message_publish,
    video_message_publish,
)

logger = logging.getLogger(__name__)


class JobStateConflict(Exception):
    """The job's state does not allow this action (HTTP 409)."""


def jobs_sweep() -> dict[str, int]:
    """Recover what a crash, a broker outage or a lost message left behind. Safe to run in every
    converter at once: each recovery is a conditional update that only one of them wins."""
    now = timezone.now()
    counts = {"recovered": 0, "failed": 0, "published": 0, "notifications": 0}

    for job in Job.objects.filter(status=Job.Status.CONVERTING, lease_expires_at__lt=DatabaseNow()):
        dead_attempt = Job.objects.filter(
            id=job.id, status=Job.Status.CONVERTING, lease_owner=job.lease_owner, lease_expires_at__lt=DatabaseNow()
        )
        if job.recoveries + 1 >= settings.MAX_CRASH_RECOVERIES:
            sentence = (
                f"The converter stopped {job.recoveries + 1} times while working on this file, so it was given up; "
                "the file may be damaged. Re-export it and upload it again."
            )
            with transaction.atomic():
                given_up = dead_attempt.update(
                    status=Job.Status.FAILED,
                    error=sentence,
                    finished_at=now,
                    recoveries=F("recoveries") + 1,
                    lease_owner="",
                    lease_expires_at=None,
                )
                if given_up:
                    counters_add({FAILURES: 1})
                    job_outcome_on_commit(job.id)  # the owner's "failed" email
            if given_up:
                counts["failed"] += 1
                dead_letter_publish(broker.VIDEO, job.id, "crash recovery limit")
            continue
        if dead_attempt.update(
            status=Job.Status.QUEUED,
            progress=0,
            recoveries=F("recoveries") + 1,
            lease_owner="",
            lease_expires_at=None,
            published_at=None,
            retry_at=None,
            updated_at=DatabaseNow(),
        ):
            logger.warning("job %s: its converter died (lease expired); queued again", job.id)
            counts["recovered"] += 1
            job_queue_on_commit(job.id)  # this sweeper won the recovery: it publishes the job too

    # Not yet published: a job queued within the last 2 s is being published by whoever queued it.
    unpublished = Q(published_at__isnull=True, updated_at__lt=database_now_plus(-2)) & (
        Q(retry_at__isnull=True) | Q(retry_at__lte=DatabaseNow())
    )
    lost = Q(published_at__lt=database_now_plus(-settings.STALE_QUEUED_SECONDS))
    waiting = Q(status=Job.Status.QUEUED) & (unpublished | lost)
    for job_id in Job.objects.filter(waiting).values_list("id", flat=True):
        # Claimed like a state change, so of the sweepers that saw this job only one publishes it.
        if Job.objects.filter(waiting, id=job_id).update(published_at=DatabaseNow(), updated_at=DatabaseNow()):
            video_message_publish(job_id, claimed=True)
            counts["published"] += 1

    # A converter that died right after committing `done` may have left the source video behind.
    if not settings.KEEP_SOURCE_VIDEOS:
        for job in Job.objects.filter(status=Job.Status.DONE, finished_at__lt=now - timedelta(seconds=2)).exclude(
            video_file_id=""
        ):
            job_source_video_discard(job=job)

    # An email whose retry is due, or whose message was lost: published again, claimed like a state
    # change so that of the sweepers that saw it only one publishes it.
    lost = Q(notify_retry_at__isnull=True, finished_at__lt=database_now_plus(-2)) & (
        Q(mp3_published_at__isnull=True)
        | Q(mp3_published_at__lt=database_now_plus(-settings.STALE_NOTIFICATION_SECONDS))
    )
    waiting = notification_due() & (lost | Q(notify_retry_at__isnull=False))
    for job_id in Job.objects.filter(waiting).values_list("id", flat=True):
        if Job.objects.filter(waiting, id=job_id).update(mp3_published_at=DatabaseNow(), notify_retry_at=None):
            mp3_message_publish(job_id)
            counts["notifications"] += 1
    return counts


# What a job may be converted from again: its stored audio source is kept until it is deleted or expires.
RETRYABLE = (Job.Status.FAILED, Job.Status.CANCELLED)
CONVERTIBLE_AGAIN = (Job.Status.DONE, *RETRYABLE)


def job_retry(*, job: Job, options: job_options.JobOptions | None = None) -> Job:
    """failed or cancelled -> queued, and queue it again: with the same options, or with `options`
    (validated on their own; checked here against what the upload probed, raising UploadRejected)."""
    if job.status not in RETRYABLE:
        raise JobStateConflict(_state_sentence(job, "retried", RETRYABLE))
    changed = {}
    if options is not None:
        options = intake.options_for_stored_job(job=job, options=options)
        options_key = intake.dedup_key(options, original_filename=job.original_filename, source_tags=job.source_tags)
        changed = {"options": options.canonical(), "options_key": options_key, "input_loudness": None}
    _source_stored_check(job)
    with transaction.atomic():
        user_lock(user=job.owner)
        intake.queued_quota_check(owner=job.owner)
        updated = Job.objects.filter(id=job.id, status=job.status).update(
            status=Job.Status.QUEUED,
            error="",
            progress=0,
            finished_at=None,
            started_at=None,
            published_at=None,
            recoveries=0,
            transient_failures=0,
            retry_at=None,
            updated_at=DatabaseNow(),
            **changed,
        )
        if not updated:
            raise JobStateConflict("This job changed state meanwhile; reload it and try again.")
        job_queue_on_commit(job.id)
        job.refresh_from_db()  # inside the transaction: the state this request made, not a converter's next one
    return job


def job_convert_again(*, job: Job, options: job_options.JobOptions) -> Job:
    """A NEW job of the same owner converting a done, failed or cancelled job's stored audio source with
    `options`, which needs no new upload: queued, or done at once when dedup finds the owner's done job
    of the same content and options (`reused_from`). The two jobs share the source and cover, each file
    deleted with the last job that names it."""
    if job.status not in CONVERTIBLE_AGAIN:
        raise JobStateConflict(_state_sentence(job, "converted again", CONVERTIBLE_AGAIN))
    options = intake.options_for_stored_job(job=job, options=options)
    if not job.source_file_id:  # a job from before the audio source: its video goes once it is converted
        raise JobStateConflict(SOURCE_GONE)
    _source_stored_check(job)
    if job.content_sha256:  # jobs from before dedup have none, and must not match each other
        reused = intake.job_create_from_digest(owner=job.owner, content_sha256=job.content_sha256, options=options)
        if reused is not None:
            return reused
    shared = (
        "original_filename",
        "size",
        "content_sha256",
        "container",
        "audio_codec",
        "video_codec",
        "duration",
        "audio_streams",
        "source_tags",
        "source_file_id",
        "source_size",
        "cover_file_id",
        "cover_size",
    )
    with transaction.atomic():
        user_lock(user=job.owner)
        # Locked, so that deleting or expiring it waits until the new job names the files it shares:
        # the files then stay with the new job (deletion.job_files_delete spares what a live job names).
        current = Job.objects.select_for_update().filter(id=job.id).first()
        if current is None or current.status not in CONVERTIBLE_AGAIN or current.source_file_id != job.source_file_id:
            raise JobStateConflict("This job changed meanwhile; reload it and try again.")
        intake.quota_check(owner=job.owner, incoming=1)  # the new MP3 is not stored yet; at a limit, refused
        new_job = Job.objects.create(
            owner=job.owner,
            options=options.canonical(),
            # Keyed as an upload of this file is (its tags too), so a later upload can reuse this MP3.
            options_key=intake.dedup_key(
                options, original_filename=current.original_filename, source_tags=current.source_tags
            ),
            **{field: getattr(current, field) for field in shared},
        )
        job_queue_on_commit(new_job.id)
    logger.info("job %s converts the audio source of job %s again with other options", new_job.id, job.id)
    return new_job


SOURCE_GONE = "The uploaded file is no longer stored, so this job cannot be converted again; upload it again."


def _source_stored_check(job: Job) -> None:
    source = selectors.job_conversion_source(job=job)
    if source is None or not storage.file_exists(*source):
        raise JobStateConflict(SOURCE_GONE)


def _state_sentence(job: Job, done: str, allowed: tuple[str, ...]) -> str:
    if job.status == Job.Status.EXPIRED:
        return "This job's files were deleted when it expired, so it cannot be " + done + "; upload the file again."
    names = " or ".join(", ".join(allowed).rsplit(", ", 1))
    return f"Only a {names} job can be {done}; this one is {job.status}. Wait until it finishes."
