"""Notification claims: at most one email per finished job. A notifier claims the send for a while,
renews the claim while a slow mail server takes it, records it, or backs off and tries again."""

import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from core import broker
from core.backoff import retry_delay
from core.database_now import DatabaseNow, database_now_plus
from uploads.models import Job
from uploads.services.publishing import dead_letter_publish

logger = logging.getLogger(__name__)


def notification_due() -> Q:
    """Done, not notified, not being sent by a notifier, not waiting out a backoff, not given up."""
    return (
        Q(status=Job.Status.DONE, notified_at__isnull=True, notify_attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
        & (Q(notify_claimed_until__isnull=True) | Q(notify_claimed_until__lt=DatabaseNow()))
        & (Q(notify_retry_at__isnull=True) | Q(notify_retry_at__lte=DatabaseNow()))
    )


def job_claim_notification(*, job_id, seconds: int = 60) -> Job | None:
    """Hold the right to send this job's email for a while; None when it was sent, another notifier is
    sending it, its next try is not due yet, or it was given up."""
    claimed = Job.objects.filter(notification_due(), id=job_id).update(notify_claimed_until=database_now_plus(seconds))
    return Job.objects.select_related("owner").get(id=job_id) if claimed else None


def job_renew_notification_claim(*, job_id, seconds: int) -> bool:
    """Extend the claim while a slow mail server is still taking the email; False once it is no longer held."""
    return bool(
        Job.objects.filter(id=job_id, notified_at__isnull=True, notify_claimed_until__isnull=False).update(
            notify_claimed_until=database_now_plus(seconds)
        )
    )


def job_record_notification(*, job_id) -> None:
    """The email was accepted by the mail server: never send it again."""
    Job.objects.filter(id=job_id, notified_at__isnull=True).update(
        notified_at=timezone.now(), notify_claimed_until=None
    )


def job_notification_failed(*, job_id, reason: str) -> str:
    """The send failed: try again after a backoff (the sweeper publishes the job when it is due), or give
    up past NOTIFY_MAX_ATTEMPTS, leaving one trace in the dead-letter queue. "retrying" or "given up".

    The message itself is acknowledged, not requeued: a mail server down for an hour costs a handful of
    tries per job, not a requeue storm into the dead-letter queue."""
    attempts = Job.objects.get(id=job_id).notify_attempts + 1
    give_up = attempts >= settings.NOTIFY_MAX_ATTEMPTS
    delay = retry_delay(attempts, base=settings.NOTIFY_RETRY_BASE_SECONDS)
    Job.objects.filter(id=job_id, notified_at__isnull=True).update(
        notify_attempts=attempts,
        notify_error=reason[:1000],
        notify_claimed_until=None,
        notify_retry_at=None if give_up else database_now_plus(delay),
    )
    if give_up:
        logger.error("job %s: its email failed %d times; given up: %s", job_id, attempts, reason)
        dead_letter_publish(broker.MP3, job_id, f"email failed {attempts} times: {reason}")
        return "given up"
    logger.warning("job %s: its email failed (%s); try %d in %.0f s", job_id, reason, attempts + 1, delay)
    return "retrying"
