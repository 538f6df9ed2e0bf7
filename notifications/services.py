"""The job emails: "ready" once a job is done, "failed" once it failed, at most one of each per job.

The notifier reads the job's state to know which email a message asks for: the row is the source of
truth, so a message for a job retried meanwhile sends nothing, and a retried job that then finishes gets
its "ready" email. A user who turned emails off (User.email_notifications) gets none.

Send, then record: a crash between the mail server accepting the email and the record is the one
window in which a second email can go out (see the README's Guarantees).
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from core import broker, failpoints
from core.backoff import retry_delay
from core.database_now import DatabaseNow, database_now_plus
from core.renewal import RenewedWhileRunning
from notifications import webhooks
from notifications.models import EmailDelivery
from uploads import selectors as job_selectors
from uploads.services import notification_claims
from uploads.services.publishing import dead_letter_publish, outcome_message_publish

logger = logging.getLogger(__name__)

FAILED = EmailDelivery.Outcome.FAILED
State = EmailDelivery.State

# Lost "failed" messages are looked for among the jobs that failed this long ago at most.
LOST_FAILED_EMAILS_WINDOW = timedelta(days=1)


def job_page_url(job_id) -> str:
    return settings.PUBLIC_URL + reverse("job-page", args=[job_id])


def _failure(exc: Exception) -> str:
    """What went wrong, for operators (the error columns and the logs)."""
    return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__


def _email(job, *, subject: str, template: str) -> EmailMultiAlternatives:
    """The email from its two templates, `<template>.txt` and `<template>.html`."""
    context = {"job": job, "url": job_page_url(job.id)}
    message = EmailMultiAlternatives(
        subject=subject, body=render_to_string(f"notifications/{template}.txt", context), to=[job.owner.email]
    )
    message.attach_alternative(render_to_string(f"notifications/{template}.html", context), "text/html")
    return message


def _send_while_claimed(message: EmailMultiAlternatives, *, renew: Callable[[], bool], name: str) -> None:
    """Send, renewing the claim meanwhile: a slow mail server (each answer within EMAIL_TIMEOUT, the whole
    send longer than the claim) must not let the sweeper hand the same email to another notifier."""
    every = max(0.5, settings.NOTIFY_CLAIM_SECONDS / 3)
    with RenewedWhileRunning(renew, every=every, name=name):
        message.send()


def job_notify(*, job_id: str) -> bool:
    """Record the job's webhook events, and send the email its state asks for; False when there is no
    email to send (sent already, being sent, waiting out a backoff, turned off, or the job is neither done
    nor failed: an expired job has webhooks only)."""
    job_selectors.job_id_require(job_id)
    job = job_selectors.job_require(job_id=job_id)
    # First, and whatever the emails do: written once per endpoint and outcome, sent by the dispatcher's threads.
    webhooks.job_events_record(job=job, job_url=job_page_url(job.id))
    if job.status == job.Status.FAILED:
        return failed_email_send(job_id=job.id)
    return ready_email_send(job_id=job.id)


def ready_email_send(*, job_id) -> bool:
    """Email the owner that the MP3 is ready (its state is on the job: notification_claims)."""
    job = notification_claims.job_claim_notification(job_id=job_id, seconds=settings.NOTIFY_CLAIM_SECONDS)
    if job is None:
        logger.info("job %s needs no ready email (already sent, not done, or being sent)", job_id)
        return False
    failpoints.reached("notify-claimed", job.id)
    if not job.owner.email_notifications:
        # Recorded as handled, so neither the sweeper nor turning emails on again later sends it.
        notification_claims.job_record_notification(job_id=job.id)
        logger.info("job %s: no ready email, its owner turned emails off", job.id)
        return False
    message = _email(job, subject=f"Your MP3 is ready: {job.mp3_filename}", template="mp3_ready")
    renew = partial(
        notification_claims.job_renew_notification_claim, job_id=job.id, seconds=settings.NOTIFY_CLAIM_SECONDS
    )
    try:
        _send_while_claimed(message, renew=renew, name=f"the email claim of job {job.id}")
    except Exception as exc:  # noqa: BLE001 - whatever the mail server or provider did, try again later
        notification_claims.job_notification_failed(job_id=job.id, reason=_failure(exc))
        return False
    notification_claims.job_record_notification(job_id=job.id)
    failpoints.reached("notify-recorded", job.id)
    logger.info("notified %s about job %s", job.owner.email, job.id)
    return True


def _email_due() -> Q:
    """Pending, not being sent by a notifier, not waiting out a backoff."""
    return (
        Q(state=State.PENDING)
        & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=DatabaseNow()))
        & (Q(retry_at__isnull=True) | Q(retry_at__lte=DatabaseNow()))
    )


def email_delivery_claim(*, job_id, outcome: str, seconds: int) -> EmailDelivery | None:
    """Hold the right to send this outcome's email for a while; None when it was sent or given up,
    another notifier is sending it, or its next try is not due yet. A skipped email (the job was retried
    before it went out, or emails were off) is pending again: the job came back to this outcome."""
    delivery, _ = EmailDelivery.objects.get_or_create(job_id=job_id, outcome=outcome)
    EmailDelivery.objects.filter(id=delivery.id, state=State.SKIPPED).update(state=State.PENDING)
    claimed = EmailDelivery.objects.filter(_email_due(), id=delivery.id).update(
        claimed_until=database_now_plus(seconds)
    )
    return EmailDelivery.objects.get(id=delivery.id) if claimed else None


def email_delivery_renew(*, delivery_id: int, seconds: int) -> bool:
    return bool(
        EmailDelivery.objects.filter(id=delivery_id, state=State.PENDING, claimed_until__isnull=False).update(
            claimed_until=database_now_plus(seconds)
        )
    )


def email_delivery_close(*, delivery_id: int, state: str) -> None:
    """Sent (never again) or skipped (nothing to send now)."""
    sent_at = timezone.now() if state == State.SENT else None
    EmailDelivery.objects.filter(id=delivery_id, state=State.PENDING).update(
        state=state, sent_at=sent_at, claimed_until=None
    )


def email_delivery_failed(*, delivery: EmailDelivery, reason: str) -> str:
    """The send failed: try again after a backoff (the notifier's sweeper publishes it when due), or give
    up past NOTIFY_MAX_ATTEMPTS, leaving a trace in the dead-letter queue. "retrying" or "given up"."""
    attempts = delivery.attempts + 1
    give_up = attempts >= settings.NOTIFY_MAX_ATTEMPTS
    delay = retry_delay(attempts, base=settings.NOTIFY_RETRY_BASE_SECONDS)
    EmailDelivery.objects.filter(id=delivery.id, state=State.PENDING).update(
        attempts=attempts,
        error=reason[:1000],
        claimed_until=None,
        state=State.GIVEN_UP if give_up else State.PENDING,
        retry_at=None if give_up else database_now_plus(delay),
    )
    if give_up:
        logger.error(
            "job %s: its %s email failed %d times; given up: %s", delivery.job_id, delivery.outcome, attempts, reason
        )
        dead_letter_publish(broker.MP3, delivery.job_id, f"{delivery.outcome} email failed {attempts} times: {reason}")
        return "given up"
    logger.warning(
        "job %s: its %s email failed (%s); try %d in %.0f s",
        delivery.job_id,
        delivery.outcome,
        reason,
        attempts + 1,
        delay,
    )
    return "retrying"


def failed_email_send(*, job_id) -> bool:
    """Email the owner that the job failed: the failure's sentence and a link to the job's page, whose
    Convert again retries it."""
    seconds = settings.NOTIFY_CLAIM_SECONDS
    delivery = email_delivery_claim(job_id=job_id, outcome=FAILED, seconds=seconds)
    if delivery is None:
        logger.info("job %s needs no failed email (already sent, being sent, or given up)", job_id)
        return False
    failpoints.reached("notify-claimed", job_id)
    job = job_selectors.job_require(job_id=job_id)  # read after the claim: the state this send is about
    if job.status != job.Status.FAILED or not job.owner.email_notifications:
        email_delivery_close(delivery_id=delivery.id, state=State.SKIPPED)
        logger.info(
            "job %s: no failed email (the job is %s; emails on: %s)", job_id, job.status, job.owner.email_notifications
        )
        return False
    message = _email(job, subject=f"Your conversion failed: {job.original_filename}", template="job_failed")
    renew = partial(email_delivery_renew, delivery_id=delivery.id, seconds=seconds)
    try:
        _send_while_claimed(message, renew=renew, name=f"the failed-email claim of job {job.id}")
    except Exception as exc:  # noqa: BLE001 - whatever the mail server or provider did, try again later
        email_delivery_failed(delivery=delivery, reason=_failure(exc))
        return False
    email_delivery_close(delivery_id=delivery.id, state=State.SENT)
    failpoints.reached("notify-recorded", job.id)
    logger.info("told %s that job %s failed", job.owner.email, job.id)
    return True


def email_deliveries_sweep() -> dict[str, int]:
    """The notifier's housekeeping for the emails this app keeps: publish again those whose backoff is
    over, whose notifier died mid-send, or whose message an outage lost. Each publish is claimed by a
    conditional update, so of the notifiers that saw one only one publishes it."""
    counts = {"published": 0}
    now = timezone.now()
    stale = now - timedelta(seconds=settings.STALE_NOTIFICATION_SECONDS)
    # A failed job whose message never reached a notifier has no row yet: one is made here, and published.
    failed = job_selectors.job_ids_failed_between(since=now - LOST_FAILED_EMAILS_WINDOW, until=stale)
    known = set(EmailDelivery.objects.filter(job_id__in=failed, outcome=FAILED).values_list("job_id", flat=True))
    for job_id in set(failed) - known:
        _, created = EmailDelivery.objects.get_or_create(
            job_id=job_id, outcome=FAILED, defaults={"published_at": timezone.now()}
        )
        if created:
            outcome_message_publish(job_id)
            counts["published"] += 1
    # Published (or made by a notifier's claim) long ago and still pending: lost, or its notifier died.
    long_ago = database_now_plus(-settings.STALE_NOTIFICATION_SECONDS)
    lost = Q(retry_at__isnull=True) & (
        Q(published_at__lt=long_ago) | Q(published_at__isnull=True, created_at__lt=long_ago)
    )
    waiting = _email_due() & (lost | Q(retry_at__isnull=False))
    for delivery_id, job_id in EmailDelivery.objects.filter(waiting).values_list("id", "job_id"):
        if EmailDelivery.objects.filter(waiting, id=delivery_id).update(published_at=DatabaseNow(), retry_at=None):
            outcome_message_publish(job_id)
            counts["published"] += 1
    return counts
