"""The broker goes away: a private RabbitMQ node is stopped and restarted under the running workers."""

import time
import uuid

import pytest

from core import broker, storage
from tests.support import media
from tests.support.pipeline import shared_service_env, stored_files_and_orphan_chunks
from tests.support.private_rabbitmq import private_node
from tests.support.processes import manage_command, stop_process
from tests.support.uploads import upload, upload_unique
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def private_broker():
    with private_node() as node:
        yield node


@pytest.fixture
def outage_env(private_broker, mongodb, settings, tmp_path):
    if private_broker.process is None:  # a failed test left it stopped
        private_broker.start()
    settings.AMQP_URL = private_broker.url
    broker.reset()
    env = {
        **shared_service_env(tmp_path / "emails"),
        "SWEEP_INTERVAL_SECONDS": "1",
        "JOB_LEASE_SECONDS": "5",
        "STALE_NOTIFICATION_SECONDS": "3",
    }
    yield env
    if private_broker.process is None:
        private_broker.start()
    broker.delete_queues() if settings.QUEUE_PREFIX else None
    broker.reset()


def wait_all_done(job_ids, timeout):
    deadline = time.monotonic() + timeout
    while Job.objects.filter(id__in=job_ids).exclude(status="done", notified_at__isnull=False).exists():
        assert time.monotonic() < deadline, list(
            Job.objects.filter(id__in=job_ids).values_list("status", "published_at")
        )
        time.sleep(0.5)


def test_broker_restarted_with_jobs_in_flight_and_uploads_going_on(
    outage_env, private_broker, uploader, tmp_path, tmp_path_factory, settings
):
    settings.QUEUE_PREFIX = outage_env["QUEUE_PREFIX"] = "outage-"
    settings.QUOTA_QUEUED_JOBS_PER_USER = 0  # one user's 15 jobs in flight at once: a load, not a quota test
    path = media.make_media(tmp_path_factory.getbasetemp() / "media-cache", "wav_pcm", seconds=30.0)
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **outage_env)
    notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **outage_env)
    try:
        accepted = []
        for _ in range(10):
            accepted.append(upload_unique(uploader, path))
        private_broker.stop()
        for _ in range(5):  # uploads go on while the broker is down
            accepted.append(upload_unique(uploader, path))
        time.sleep(3)
        private_broker.start()
        for _ in range(5):
            accepted.append(upload_unique(uploader, path))
        wait_all_done(accepted, timeout=180)
        assert stored_files_and_orphan_chunks(storage.MP3S) == (20, 0)
    finally:
        assert stop_process(converter) == 0
        assert stop_process(notifier) == 0


def test_upload_while_the_broker_is_down_is_202_and_completes_when_it_is_back(
    outage_env, private_broker, uploader, tmp_path, tmp_path_factory, settings
):
    settings.QUEUE_PREFIX = outage_env["QUEUE_PREFIX"] = "down-"
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **outage_env)
    notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **outage_env)
    try:
        private_broker.stop()
        path = media.make_media(tmp_path_factory.getbasetemp() / "media-cache", "wav_pcm")
        response = upload(uploader, path, title=uuid.uuid4().hex)
        assert response.status_code == 202 and response.json()["status"] == "queued"
        assert Job.objects.get(id=response.json()["id"]).published_at is None
        time.sleep(3)
        private_broker.start()
        wait_all_done([response.json()["id"]], timeout=120)
    finally:
        assert stop_process(converter) == 0
        assert stop_process(notifier) == 0
