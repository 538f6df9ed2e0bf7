"""The notification email, sent once per finished job."""

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from uploads import selectors as job_selectors
from uploads import services as job_services

logger = logging.getLogger(__name__)


def job_page_url(job_id) -> str:
    return settings.PUBLIC_URL + reverse("job-page", args=[job_id])


def job_notify(*, job_id: str) -> bool:
    """Email the owner that the MP3 is ready; False when there is nothing to send (already sent, or not done)."""
    if not job_services.job_claim_notification(job_id=job_id):
        logger.info("job %s needs no notification (already sent, or not done)", job_id)
        return False
    job = job_selectors.job_get(job_id=job_id)
    context = {"job": job, "url": job_page_url(job.id)}
    message = EmailMultiAlternatives(
        subject=f"Your MP3 is ready: {job.mp3_filename}",
        body=render_to_string("notifications/mp3_ready.txt", context),
        to=[job.owner.email],
    )
    message.attach_alternative(render_to_string("notifications/mp3_ready.html", context), "text/html")
    try:
        message.send()
    except Exception:
        job_services.job_unclaim_notification(job_id=job_id)  # let the redelivered message try again
        raise
    logger.info("notified %s about job %s", job.owner.email, job.id)
    return True
