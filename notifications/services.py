"""The notification email, sent once per finished job.

Send, then record: a crash between the mail server accepting the email and the record
is the one window in which a second email can go out (see the README's Guarantees).
"""

import logging
import threading

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connections
from django.template.loader import render_to_string
from django.urls import reverse

from uploads import selectors as job_selectors
from uploads import services as job_services
from videomp3 import broker, failpoints

logger = logging.getLogger(__name__)


def job_page_url(job_id) -> str:
    return settings.PUBLIC_URL + reverse("job-page", args=[job_id])


class _ClaimHeld:
    """Renews the notification claim from a thread while the email is being sent: a slow mail server
    (each answer within EMAIL_TIMEOUT, the whole send longer than NOTIFY_CLAIM_SECONDS) must not let
    the sweeper hand the same email to another notifier."""

    def __init__(self, job_id):
        self.job_id = job_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"notify-claim-{job_id}", daemon=True)

    def _renew(self) -> None:
        seconds = settings.NOTIFY_CLAIM_SECONDS
        try:
            while not self._done.wait(max(0.5, seconds / 3)):
                try:
                    if not job_services.job_renew_notification_claim(job_id=self.job_id, seconds=seconds):
                        return
                except Exception:  # noqa: BLE001 - the database may be back before the claim runs out
                    logger.warning("could not renew the email claim of job %s", self.job_id, exc_info=True)
        finally:
            connections.close_all()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        self._thread.join()


def _failure(exc: Exception) -> str:
    """What went wrong, for operators (the notify_error column and the logs)."""
    return f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__


def job_notify(*, job_id: str) -> bool:
    """Email the owner that the MP3 is ready; False when there is nothing to send (sent, not done, or being sent)."""
    if job_selectors.job_id_parse(job_id) is None:  # can never name a job: dead-lettered once, not retried
        raise broker.RejectMessage(f"job_id {str(job_id)[:64]!r} is not a UUID")
    job = job_services.job_claim_notification(job_id=job_id, seconds=settings.NOTIFY_CLAIM_SECONDS)
    if job is None:
        if job_selectors.job_get(job_id=job_id) is None:
            raise broker.RejectMessage(f"no job {job_id}")
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
        with _ClaimHeld(job.id):
            message.send()
    except Exception as exc:  # noqa: BLE001 - whatever the mail server or provider did, try again later
        job_services.job_notification_failed(job_id=job.id, reason=_failure(exc))
        return False
    job_services.job_record_notification(job_id=job_id)
    failpoints.reached("notify-recorded", job.id)
    logger.info("notified %s about job %s", job.owner.email, job.id)
    return True
