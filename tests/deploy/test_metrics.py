"""/metrics: Prometheus text from the job rows (gauges) and the counters (totals), behind a bearer token."""

import re
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from core import broker, storage
from tests.deploy.test_image import entrypoint
from tests.factories import job_create, user_create
from tests.support import media
from tests.support.pipeline import shared_service_env, wait_for_job
from tests.support.processes import manage_command, stop_process
from tests.support.services import free_port
from tests.support.uploads import upload_accepted
from uploads.models import Job, MetricCounter
from uploads.services import counters, deletion, leases
from videomp3 import metrics

TOKEN = "test-metrics-token-0123456789"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


@pytest.fixture
def metrics_token(health_routes):
    health_routes.METRICS_TOKEN = TOKEN
    return health_routes


@pytest.fixture
def metrics_on(metrics_token):
    """Metrics with the in-process queue, so queue depths start at zero whatever the machine's RabbitMQ holds."""
    metrics_token.AMQP_URL = ""
    broker.reset()
    yield metrics_token
    broker.reset()


def scrape(client, **headers) -> dict[str, float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == metrics.CONTENT_TYPE
    samples = {}
    for line in response.content.decode().splitlines():
        if line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        samples[match.group(1)] = float(match.group(2))
    return samples


def make_job(*, status=Job.Status.QUEUED, size=1000, mp3_size=None, seconds=None) -> Job:
    now = timezone.now()
    started = now - timedelta(seconds=seconds) if seconds is not None else None
    return job_create(
        original_filename="talk.mp4",
        size=size,
        status=status,
        mp3_size=mp3_size,
        started_at=started,
        finished_at=now if seconds is not None else None,
    )


@pytest.mark.django_db
def test_metrics_do_not_exist_without_a_token_configured(client, health_routes):
    health_routes.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
def test_metrics_are_refused_without_the_right_token(client, metrics_on):
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert "METRICS_TOKEN" in refused.json()["detail"]
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_a_scraper_reaches_metrics_on_the_pod_ip(client, metrics_on):
    metrics_on.ALLOWED_HOSTS = ["videomp3.example.com"]
    metrics_on.SECURE_SSL_REDIRECT = True
    assert 'videomp3_jobs{state="queued"}' in scrape(client, HTTP_HOST="10.244.0.17:8000")


def converted(*, size: int, mp3_size: int, seconds: float) -> Job:
    """A job through the converter's own state changes: claimed `seconds` ago, then its MP3 stored."""
    job = make_job(status=Job.Status.CONVERTING, size=size)
    Job.objects.filter(id=job.id).update(lease_owner="worker-a", started_at=timezone.now() - timedelta(seconds=seconds))
    mp3 = storage.StoredFile(file_id=f"mp3-{job.id}", size=mp3_size, sha256="0" * 64)
    assert leases.job_mark_done(job_id=job.id, lease_owner="worker-a", mp3=mp3, mp3_duration=60.0)
    return job


@pytest.mark.django_db
def test_the_totals_count_changes_and_never_drop(client, metrics_on):
    """Gauges follow the rows; the _total series and the histogram count what happened, so deleting
    or expiring a job leaves them where they were."""
    before = scrape(client)
    assert before['videomp3_jobs{state="done"}'] == 0 and before["videomp3_conversions_total"] == 0
    assert before['videomp3_conversion_seconds_bucket{le="+Inf"}'] == 0

    make_job(status=Job.Status.QUEUED, size=100)
    short = converted(size=2000, mp3_size=300, seconds=3)
    converted(size=4000, mp3_size=500, seconds=100)
    failing = make_job(status=Job.Status.CONVERTING, size=50)
    assert leases.job_mark_failed(job_id=failing.id, sentence="The audio could not be decoded.")
    for job in Job.objects.all():  # the bytes each upload brought, as intake counts them
        with transaction.atomic():
            counters.counters_add({counters.UPLOADED_BYTES: job.size})
    after = scrape(client)
    assert after['videomp3_jobs{state="queued"}'] == 1
    assert after['videomp3_jobs{state="done"}'] == 2
    assert after['videomp3_jobs{state="failed"}'] == 1
    assert after["videomp3_conversions_total"] == 2
    assert after["videomp3_conversion_failures_total"] == 1
    assert after["videomp3_uploaded_bytes_total"] == 6150
    assert after["videomp3_produced_bytes_total"] == 800
    # Two conversions, of 3 s and 100 s: cumulative buckets.
    assert after['videomp3_conversion_seconds_bucket{le="1.0"}'] == 0
    assert after['videomp3_conversion_seconds_bucket{le="5.0"}'] == 1
    assert after['videomp3_conversion_seconds_bucket{le="60.0"}'] == 1
    assert after['videomp3_conversion_seconds_bucket{le="120.0"}'] == 2
    assert after['videomp3_conversion_seconds_bucket{le="+Inf"}'] == 2
    assert after["videomp3_conversion_seconds_count"] == 2
    assert after["videomp3_conversion_seconds_sum"] == pytest.approx(103, abs=0.1)
    assert after['videomp3_queue_messages{queue="video"}'] == 0

    # The owner deletes the failed job, retention expires a done one: the gauges move, the totals stay.
    deletion.job_delete(job=failing)
    Job.objects.filter(id=short.id).update(status=Job.Status.EXPIRED)
    later = scrape(client)
    assert later['videomp3_jobs{state="failed"}'] == 0 and later['videomp3_jobs{state="done"}'] == 1
    totals = [name for name in after if "_total" in name or name.startswith("videomp3_conversion_seconds")]
    assert {name: later[name] for name in totals} == {name: after[name] for name in totals}


@pytest.mark.django_db
def test_a_counter_first_used_after_the_migration_starts_from_zero(client, metrics_on):
    MetricCounter.objects.filter(name=counters.FAILURES).delete()
    failing = make_job(status=Job.Status.QUEUED)
    assert leases.job_mark_failed(job_id=failing.id, sentence="The audio could not be decoded.")
    assert scrape(client)["videomp3_conversion_failures_total"] == 1


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_counters_move_after_a_real_conversion_by_the_converter_role(
    client, metrics_token, mongodb, rabbitmq, tmp_path
):
    """Upload through the API; `manage.py run_converter` converts it as its own process, beating its heartbeat."""
    heartbeat = tmp_path / "worker-heartbeat"
    converter = manage_command(
        ["run_converter"],
        tmp_path / "converter.log",
        **shared_service_env(tmp_path / "emails"),
        WORKER_HEARTBEAT_FILE=str(heartbeat),
    )
    try:
        before = scrape(client)
        uploader = APIClient()
        uploader.force_authenticate(user_create())
        source = media.make_media(tmp_path / "media", "wav_pcm")
        job_id = upload_accepted(uploader, source)["id"]
        job = wait_for_job(job_id, lambda job: job.status == Job.Status.DONE, timeout=30)

        after = scrape(client)
        assert after["videomp3_conversions_total"] == before["videomp3_conversions_total"] + 1
        assert after["videomp3_conversion_seconds_count"] == before["videomp3_conversion_seconds_count"] + 1
        assert after["videomp3_conversion_seconds_sum"] > before["videomp3_conversion_seconds_sum"]
        assert after["videomp3_uploaded_bytes_total"] == before["videomp3_uploaded_bytes_total"] + job.size
        assert after["videomp3_produced_bytes_total"] == before["videomp3_produced_bytes_total"] + job.mp3_size
        assert job.mp3_size > 0
        assert after['videomp3_queue_messages{queue="mp3"}'] == before['videomp3_queue_messages{queue="mp3"}'] + 1
        # The probe the converter's pods run sees the heartbeat the real consume loop keeps.
        assert entrypoint.worker_is_alive(heartbeat)
    finally:
        code = stop_process(converter)
    assert code == 0, (tmp_path / "converter.log").read_text()[-3000:]


@pytest.mark.django_db
def test_metrics_still_answer_with_the_broker_down(client, metrics_on):
    metrics_on.AMQP_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    broker.reset()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    text = response.content.decode()
    assert "# videomp3_queue_messages omitted: the broker did not answer (BrokerError)." in text
    assert "videomp3_queue_messages{" not in text
    assert 'videomp3_jobs{state="queued"} 0' in text
