"""The sweeper (uploads.services.recovery.jobs_sweep), which every converter runs: re-publishing a job is claimed
like a state change, and every way back to `queued` restarts the publishing grace period."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from conversion.services import job_convert
from core import broker, storage
from notifications.services import job_notify
from tests.factories import job_create
from tests.support.concurrency import at_once
from uploads.models import Job
from uploads.services import leases, recovery

pytestmark = pytest.mark.django_db(transaction=True)


def _long_ago():
    return timezone.now() - timedelta(minutes=5)


def test_parallel_sweepers_publish_a_stuck_job_once(rabbitmq):
    broker.declare_queues()
    job = job_create()  # queued, never published (the broker was down at upload, say)
    Job.objects.filter(id=job.id).update(updated_at=_long_ago())
    at_once(*[recovery.jobs_sweep] * 6)
    assert broker.queue_depth(broker.VIDEO) == 1
    assert Job.objects.get(id=job.id).published_at is not None


def test_a_failed_publish_leaves_the_job_for_the_next_sweep(rabbitmq, settings):
    job = job_create()
    Job.objects.filter(id=job.id).update(updated_at=_long_ago())
    reachable = settings.AMQP_URL
    settings.AMQP_URL = "amqp://guest:guest@127.0.0.1:9/%2F"  # nothing listens there
    broker.reset()
    try:
        recovery.jobs_sweep()
    finally:
        settings.AMQP_URL = reachable
        broker.reset()
    assert Job.objects.get(id=job.id).published_at is None  # claimed for the publish, released when it failed
    Job.objects.filter(id=job.id).update(updated_at=_long_ago())
    assert recovery.jobs_sweep()["published"] == 1
    assert broker.queue_depth(broker.VIDEO) == 1


@pytest.mark.parametrize("way_back", ["release", "retry_later", "retry", "recovery"])
def test_every_way_back_to_queued_restarts_the_grace_period(rabbitmq, mongodb, way_back):
    """updated_at is auto_now, which .update() never sets: the sweeper would republish at once."""
    job = job_create(status=Job.Status.CONVERTING, lease_owner="attempt-1", lease_expires_at=timezone.now())
    if way_back == "retry":
        source = storage.save_stream(
            storage.SOURCES, io.BytesIO(b"audio"), filename="a.mka", content_type="audio/x-matroska"
        )
        Job.objects.filter(id=job.id).update(
            status=Job.Status.FAILED, source_file_id=source.file_id, updated_at=_long_ago()
        )
    else:
        Job.objects.filter(id=job.id).update(updated_at=_long_ago())
    before = Job.objects.get(id=job.id).updated_at
    if way_back == "release":
        leases.job_release(job_id=job.id, lease_owner="attempt-1")
    elif way_back == "retry_later":
        leases.job_retry_later(job_id=job.id, lease_owner="attempt-1", reason="The store is away.")
    elif way_back == "retry":
        recovery.job_retry(job=Job.objects.get(id=job.id))
    else:
        Job.objects.filter(id=job.id).update(lease_expires_at=_long_ago())
        assert recovery.jobs_sweep()["recovered"] == 1
    after = Job.objects.get(id=job.id)
    assert after.status == Job.Status.QUEUED and after.updated_at > before + timedelta(minutes=4)


def test_a_message_whose_job_id_is_not_a_uuid_is_rejected_not_retried(rabbitmq):
    for handle in (lambda job_id: job_convert(job_id=job_id), lambda job_id: job_notify(job_id=job_id)):
        with pytest.raises(Job.DoesNotExist, match="is not a UUID"):  # the worker dead-letters its message
            handle("not-a-uuid")
