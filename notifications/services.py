"""The notification email, sent once per finished job.

Send, then record: a crash between the mail server accepting the email and the record
is the one window in which a second email can go out (see the README's Guarantees).
"""

import logging
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from core import failpoints
from core.renewal import RenewedWhileRunning
from uploads import selectors as job_selectors
from uploads.services import notification_claims

logger = logging.getLogger(__name__)


def job_page_url(job_id) -> str:
    return settings.PUBLIC_URL + reverse("job-page", args=[job_id])


def _failure(exc: Exception) -> str:
    """What went wrong, for operators (the notify_error column and the logs)."""
    return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__


def job_notify(*, job_id: str) -> bool:
    """Email the owner that the MP3 is ready; False when there is nothing to send (sent, not done, or being sent)."""
    job_selectors.job_id_require(job_id)
    job = notification_claims.job_claim_notification(job_id=job_id, seconds=settings.NOTIFY_CLAIM_SECONDS)
    if job is None:
        job_selectors.job_require(job_id=job_id)
        logger.info("job %s needs no notification (already sent, not done, or being sent)", job_id)
        return False
    failpoints.reached("notify-claimed", job.id)
    context = {"job": job, "url": job_page_url(job.id)}
    message = EmailMultiAlternatives(
        subject=f"Your MP3 is ready: {job.mp3_filename}",
        body=render_to_string("notifications/mp3_ready.txt", context),
        to=[job.owner.email],
    )
    message.attach_alternative(render_to_string("notifications/mp3_ready.html", context), "text/html")
    try:
        # A slow mail server (each answer within EMAIL_TIMEOUT, the whole send longer than the claim)
        # must not let the sweeper hand the same email to another notifier: the claim is renewed meanwhile.
        seconds = settings.NOTIFY_CLAIM_SECONDS
        renew = partial(notification_claims.job_renew_notification_claim, job_id=job.id, seconds=seconds)
        with RenewedWhileRunning(renew, every=max(0.5, seconds / 3), name=f"the email claim of job {job.id}"):
            message.send()
    except Exception as exc:  # noqa: BLE001 - whatever the mail server or provider did, try again later
        notification_claims.job_notification_failed(job_id=job.id, reason=_failure(exc))
        return False
    notification_claims.job_record_notification(job_id=job_id)
    failpoints.reached("notify-recorded", job.id)
    logger.info("notified %s about job %s", job.owner.email, job.id)
    return True
