from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications.services import job_notify
from tests.factories import job_create, user_create
from uploads.models import Job

pytestmark = pytest.mark.django_db


def done_job(**fields) -> Job:
    return job_create(
        owner=user_create(email="owner@example.com"),
        original_filename="Talk – ünïcode.mp4",
        size=10,
        status=Job.Status.DONE,
        mp3_file_id="mp3-x",
        mp3_size=5,
        mp3_duration=61.2,
        **fields,
    )


def test_one_email_with_the_job_page_link_and_no_second_on_redelivery(settings):
    settings.PUBLIC_URL = "https://mp3.example.com"
    job = done_job()
    assert job_notify(job_id=str(job.id)) is True
    assert job_notify(job_id=str(job.id)) is False  # the redelivered message
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.com"]
    assert f"https://mp3.example.com/jobs/{job.id}/" in message.body
    assert "Talk – ünïcode.mp3" in message.subject
    job.refresh_from_db()
    assert job.notified_at is not None


def test_jobs_that_are_neither_done_nor_failed_are_not_notified():
    job = done_job()
    Job.objects.filter(id=job.id).update(status=Job.Status.CONVERTING)
    assert job_notify(job_id=str(job.id)) is False
    assert mail.outbox == []


def test_a_failed_send_waits_out_its_backoff_then_the_next_try_sends_it(settings):
    job = done_job()
    settings.EMAIL_BACKEND = "tests.notifications.failing_backend.EmailBackend"
    assert job_notify(job_id=str(job.id)) is False  # acknowledged, not requeued: the retry is in the row
    job.refresh_from_db()
    assert job.notified_at is None and job.notify_attempts == 1 and job.notify_retry_at is not None
    assert "unreachable" in job.notify_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert job_notify(job_id=str(job.id)) is False  # a redelivery before its time is not a try
    Job.objects.filter(id=job.id).update(notify_retry_at=timezone.now() - timedelta(seconds=1))
    assert job_notify(job_id=str(job.id)) is True
    assert len(mail.outbox) == 1


def test_an_email_is_given_up_after_its_last_try(settings):
    job = done_job()
    settings.EMAIL_BACKEND = "tests.notifications.failing_backend.EmailBackend"
    settings.NOTIFY_MAX_ATTEMPTS = 2
    for _ in range(2):
        Job.objects.filter(id=job.id).update(notify_retry_at=None)
        assert job_notify(job_id=str(job.id)) is False
    job.refresh_from_db()
    assert job.notify_attempts == 2 and job.notify_retry_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert job_notify(job_id=str(job.id)) is False and mail.outbox == []
