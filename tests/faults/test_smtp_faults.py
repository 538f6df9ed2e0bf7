"""The notifier against mail servers that misbehave, on 127.0.0.1, with real notifier and converter
(its sweeper) processes: one that never answers, one that is down for a while, one that answers
slowly. Bounded waits, backoff instead of a requeue storm, and one email per job."""

import time
from pathlib import Path

import pytest

from conversion.services import job_convert
from core import broker
from tests.support import media
from tests.support.pipeline import wait_for_job
from tests.support.processes import manage_command, stop_process
from tests.support.services import free_port
from tests.support.smtp import SmtpServer
from tests.support.uploads import upload_unique

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def smtp_env(fault_env, port: int, **extra) -> dict[str, str]:
    return {
        **fault_env,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        **extra,
    }


def done_job(uploader, media_files) -> str:
    job_id = upload_unique(uploader, media.make_media(media_files, "wav_pcm"))
    assert job_convert(job_id=job_id) == "done"  # publishes its `mp3` message
    return job_id


def dead_letters() -> int:
    return broker.queue_depth(f"{broker.MP3}.dead")


def test_a_mail_server_that_never_answers_holds_the_notifier_only_for_email_timeout(
    fault_env, uploader, media_files, tmp_path
):
    heartbeat = tmp_path / "heartbeat"
    with SmtpServer(mode="silent") as smtp:
        env = smtp_env(
            fault_env,
            smtp.port,
            EMAIL_TIMEOUT="2",
            NOTIFY_RETRY_BASE_SECONDS="60",
            WORKER_HEARTBEAT_FILE=str(heartbeat),
        )
        notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **env)
        try:
            job_id = done_job(uploader, media_files)
            job = wait_for_job(job_id, lambda j: j.notify_attempts == 1, timeout=30)
            assert job.notified_at is None and job.notify_retry_at is not None
            assert "timed out" in job.notify_error.lower(), job.notify_error
            assert notifier.poll() is None and time.time() - Path(heartbeat).stat().st_mtime < 10
            assert dead_letters() == 0 and broker.queue_depth(broker.MP3) == 0
        finally:
            stop_process(notifier)


def test_a_mail_server_down_for_a_while_gets_each_email_once_when_it_is_back(
    fault_env, uploader, media_files, tmp_path
):
    port = free_port()  # nothing listens there yet: connections are refused
    env = smtp_env(fault_env, port, EMAIL_TIMEOUT="2", NOTIFY_RETRY_BASE_SECONDS="1")
    notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **env)
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **env)  # its sweeper re-publishes
    try:
        job_id = done_job(uploader, media_files)
        job = wait_for_job(job_id, lambda j: j.notify_attempts >= 3, timeout=60)
        assert "refused" in job.notify_error.lower(), job.notify_error
        assert dead_letters() == 0  # no requeue storm into the dead-letter queue meanwhile
        with SmtpServer(port=port) as smtp:
            job = wait_for_job(job_id, lambda j: j.notified_at is not None, timeout=60)
            time.sleep(3)  # a duplicate would arrive now
            assert len(smtp.messages) == 1 and job_id.encode() in smtp.messages[0]
        assert job.notify_attempts < 8 and dead_letters() == 0
    finally:
        stop_process(notifier)
        stop_process(converter)


def test_a_slow_mail_server_gets_one_email_though_the_send_outlasts_the_claim(
    fault_env, uploader, media_files, tmp_path
):
    with SmtpServer(mode="slow", delay=1.0) as smtp:  # seven answers: about 7 s a send
        env = smtp_env(
            fault_env, smtp.port, EMAIL_TIMEOUT="5", NOTIFY_CLAIM_SECONDS="2", STALE_NOTIFICATION_SECONDS="1"
        )
        workers = [
            manage_command(["run_notifier"], tmp_path / "notifier-1.log", **env),
            manage_command(["run_notifier"], tmp_path / "notifier-2.log", **env),
            manage_command(["run_converter"], tmp_path / "converter.log", **env),
        ]
        try:
            job_id = done_job(uploader, media_files)
            wait_for_job(job_id, lambda j: j.notified_at is not None, timeout=60)
            time.sleep(10)  # time for the sweeper to hand the email to the other notifier, if it could
            assert len(smtp.messages) == 1
        finally:
            for worker in workers:
                stop_process(worker)
