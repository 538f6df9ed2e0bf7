"""The ready and failed emails through Django's SMTP backend to a local SMTP server, sent by the real
notifier process: both parts each, the failed one with its sentence and retry link, and none for a user
who turned emails off."""

import email
import email.policy

import pytest

from core import broker
from notifications.models import EmailDelivery
from tests.factories import job_create, user_create
from tests.support.pipeline import shared_service_env
from tests.support.processes import manage_command, stop_process, wait_until
from tests.support.smtp import SmtpServer
from uploads.models import Job
from uploads.services import leases
from uploads.services.publishing import mp3_message_publish

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SENTENCE = "This video has no audio track, so there is nothing to convert to MP3."


def jobs_for(owner) -> tuple[Job, Job]:
    """A done job whose `mp3` message is published, and a job failed by the converter's service."""
    done = job_create(owner=owner, original_filename="done.mp4", status=Job.Status.DONE, mp3_file_id="m", mp3_size=5)
    mp3_message_publish(done.id)
    failed = job_create(owner=owner, original_filename="broken.mp4", status=Job.Status.CONVERTING, lease_owner="w")
    assert leases.job_mark_failed(job_id=failed.id, lease_owner="w", sentence=SENTENCE)  # publishes on commit
    return done, failed


def parts(message: email.message.EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


def test_ready_and_failed_emails_arrive_with_both_parts_and_none_for_a_user_who_turned_them_off(
    mongodb, rabbitmq, tmp_path
):
    broker.declare_queues()
    keen = user_create(email="keen@example.com")
    quiet = user_create(email="quiet@example.com", email_notifications=False)
    with SmtpServer() as smtp:
        env = {
            **shared_service_env(tmp_path / "emails"),
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp.port),
            "EMAIL_TIMEOUT": "5",
        }
        notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **env)
        try:
            quiet_done, quiet_failed = jobs_for(quiet)
            done, failed = jobs_for(keen)
            # The quiet user's messages were queued first, so once the keen user's two emails are in, both
            # of theirs were handled (one notifier, one message at a time); their rows say so.
            assert wait_until(lambda: len(smtp.messages) >= 2, timeout=30), (tmp_path / "notifier.log").read_text()
            assert wait_until(lambda: broker.queue_depth(broker.MP3) == 0, timeout=10)
        finally:
            stop_process(notifier)
    quiet_done.refresh_from_db()
    assert quiet_done.notified_at is not None
    assert EmailDelivery.objects.get(job=quiet_failed).state == EmailDelivery.State.SKIPPED
    assert len(smtp.messages) == 2
    messages = {}
    for raw in smtp.messages:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["To"] == "keen@example.com"
        messages[message["Subject"].split(":")[0]] = message
    ready, failure = messages["Your MP3 is ready"], messages["Your conversion failed"]
    assert set(parts(ready)) == set(parts(failure)) == {"text/plain", "text/html"}
    assert f"http://videomp3.test/jobs/{done.id}/" in parts(ready)["text/plain"]
    link = f"http://videomp3.test/jobs/{failed.id}/"
    for body in parts(failure).values():
        assert SENTENCE in body and link in body and "Convert again" in body
    assert '<a href="' + link + '">' in parts(failure)["text/html"]
