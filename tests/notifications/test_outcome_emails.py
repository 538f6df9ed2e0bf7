"""The "failed" email, the email opt-out, and a retried job's "ready" email, through the notifier's
per-message function (the real notifier process runs in test_emails_over_smtp.py)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import EmailDelivery
from notifications.services import email_deliveries_sweep, job_notify
from tests.factories import job_create, user_create
from uploads.models import Job
from uploads.services import leases

pytestmark = pytest.mark.django_db

SENTENCE = "This video has no audio track, so there is nothing to convert to MP3."


def failed_job(**owner_fields) -> Job:
    owner = user_create(email="owner@example.com", **owner_fields)
    return job_create(owner=owner, original_filename="Talk.mp4", status=Job.Status.FAILED, error=SENTENCE)


def test_a_failed_job_gets_one_email_with_its_sentence_and_retry_link(settings):
    settings.PUBLIC_URL = "https://mp3.example.com"
    job = failed_job()
    assert job_notify(job_id=str(job.id)) is True
    assert job_notify(job_id=str(job.id)) is False  # the redelivered message
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.com"] and "Talk.mp4" in message.subject and "failed" in message.subject
    link = f"https://mp3.example.com/jobs/{job.id}/"
    html, kind = message.alternatives[0]
    assert kind == "text/html"
    for part in (message.body, html):
        assert SENTENCE in part and link in part and "Convert again" in part
    delivery = EmailDelivery.objects.get(job=job)
    assert delivery.state == EmailDelivery.State.SENT and delivery.sent_at is not None


def test_a_retried_job_that_finishes_gets_its_ready_email_and_a_second_failure_no_second_failed_email():
    job = failed_job()
    assert job_notify(job_id=str(job.id)) is True
    # Retried, failed again: the failed email went out once already.
    Job.objects.filter(id=job.id).update(status=Job.Status.FAILED, error="again")
    assert job_notify(job_id=str(job.id)) is False
    # Retried, and done this time.
    Job.objects.filter(id=job.id).update(status=Job.Status.DONE, mp3_file_id="mp3-x", mp3_size=5, error="")
    assert job_notify(job_id=str(job.id)) is True
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Your conversion failed", "Your MP3 is ready"]


def test_a_failed_message_handled_after_the_job_was_retried_sends_nothing_until_it_fails_again():
    job = failed_job()
    Job.objects.filter(id=job.id).update(status=Job.Status.QUEUED, error="")  # retried before the email went out
    assert job_notify(job_id=str(job.id)) is False
    Job.objects.filter(id=job.id).update(status=Job.Status.FAILED, error=SENTENCE)
    assert job_notify(job_id=str(job.id)) is True
    assert len(mail.outbox) == 1


def test_a_user_who_turned_emails_off_gets_neither_email_and_is_not_asked_again():
    job = failed_job(email_notifications=False)
    assert job_notify(job_id=str(job.id)) is False
    assert EmailDelivery.objects.get(job=job).state == EmailDelivery.State.SKIPPED
    done = job_create(owner=job.owner, status=Job.Status.DONE, mp3_file_id="mp3-y", mp3_size=5)
    assert job_notify(job_id=str(done.id)) is False
    done.refresh_from_db()
    assert done.notified_at is not None  # handled: the sweeper does not publish it again
    assert mail.outbox == []


def test_a_failed_send_backs_off_and_the_sweeper_publishes_it_again_when_due(settings, rabbitmq):
    from core import broker

    broker.declare_queues()
    job = failed_job()
    settings.EMAIL_BACKEND = "tests.notifications.failing_backend.EmailBackend"
    assert job_notify(job_id=str(job.id)) is False
    delivery = EmailDelivery.objects.get(job=job)
    assert delivery.attempts == 1 and delivery.retry_at is not None and "unreachable" in delivery.error
    assert email_deliveries_sweep() == {"published": 0}  # not due yet
    EmailDelivery.objects.filter(id=delivery.id).update(retry_at=timezone.now() - timedelta(seconds=1))
    depth = broker.queue_depth(broker.MP3)
    assert email_deliveries_sweep() == {"published": 1}
    assert broker.queue_depth(broker.MP3) == depth + 1
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert job_notify(job_id=str(job.id)) is True and len(mail.outbox) == 1


def test_the_sweeper_publishes_a_failed_email_whose_message_was_lost(settings, rabbitmq):
    from core import broker

    broker.declare_queues()
    settings.STALE_NOTIFICATION_SECONDS = 5
    job = failed_job()
    Job.objects.filter(id=job.id).update(finished_at=timezone.now() - timedelta(seconds=60))
    depth = broker.queue_depth(broker.MP3)
    assert email_deliveries_sweep() == {"published": 1}
    assert email_deliveries_sweep() == {"published": 0}  # published once, not on every sweep
    assert broker.queue_depth(broker.MP3) == depth + 1


@pytest.mark.django_db(transaction=True)
def test_marking_a_job_failed_publishes_its_notification(rabbitmq):
    from core import broker

    broker.declare_queues()
    job = job_create(status=Job.Status.CONVERTING, lease_owner="w1")
    depth = broker.queue_depth(broker.MP3)
    assert leases.job_mark_failed(job_id=job.id, lease_owner="w1", sentence=SENTENCE)
    assert broker.queue_depth(broker.MP3) == depth + 1
