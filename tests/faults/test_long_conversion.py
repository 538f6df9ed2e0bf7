"""A conversion that outlives RabbitMQ's consumer timeout, on a private node whose timeout is 5 s.

RabbitMQ closes a channel that keeps a delivery unacknowledged past `consumer_timeout` (checked
once a minute on 3.10). The converter acknowledges the message as soon as the job row is claimed
and lets the database drive recovery, so a long conversion is never cut off and never redelivered;
its heartbeats keep flowing on the connection's own thread while the conversion runs on another.
"""

import time
from collections import Counter

import pika
import pytest
from rest_framework.test import APIClient

from core import broker
from tests.factories import user_create
from tests.support import media
from tests.support.pipeline import read_emails, shared_service_env
from tests.support.private_rabbitmq import private_node
from tests.support.processes import manage_command, stop_process
from tests.support.uploads import upload_accepted
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONSUMER_TIMEOUT_MS = 5000
# Past the broker's once-a-minute check of consumer_timeout, with room to spare.
CONVERSION_SECONDS = 80
HEARTBEAT_SECONDS = 5


@pytest.fixture
def short_timeout_broker(mongodb, settings):
    with private_node(f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n") as node:
        settings.AMQP_URL = f"{node.url}?heartbeat={HEARTBEAT_SECONDS}"
        broker.reset()
        yield node
        broker.reset()


def hold_a_delivery_unacknowledged(url: str):
    """A plain consumer that never acks: the broker must close its channel, proving the timeout is live."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare("consumer-timeout-control")
    channel.basic_publish("", "consumer-timeout-control", b"held")
    channel.basic_consume("consumer-timeout-control", lambda *delivery: None)
    return connection, channel


def test_a_conversion_longer_than_the_consumer_timeout_completes_once_on_one_connection(
    short_timeout_broker, settings, tmp_path
):
    env = {
        **shared_service_env(tmp_path / "emails"),
        "FAILPOINTS": f"converting=pause:{CONVERSION_SECONDS}",
        "JOB_LEASE_SECONDS": "6",  # renewed every 2 s all along: the lease never runs out
        "SWEEP_INTERVAL_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }
    converter_log = tmp_path / "converter.log"
    converter = manage_command(["run_converter"], converter_log, **env)
    notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **env)
    control_connection, control_channel = hold_a_delivery_unacknowledged(short_timeout_broker.url)
    try:
        client = APIClient()
        client.force_authenticate(user_create())
        job_id = upload_accepted(client, media.make_media(tmp_path, "opus_long_lowrate", seconds=600.0))["id"]

        deadline = time.monotonic() + CONVERSION_SECONDS + 120
        while not Job.objects.filter(id=job_id, status="done", notified_at__isnull=False).exists():
            assert time.monotonic() < deadline, Job.objects.values_list("status", "error").get(id=job_id)
            control_connection.process_data_events(time_limit=0.5)  # keeps the control consumer's heartbeats
        job = Job.objects.get(id=job_id)
    finally:
        assert stop_process(converter) == 0
        assert stop_process(notifier) == 0
        if control_connection.is_open:
            control_connection.close()

    assert not control_channel.is_open, "the broker never enforced its consumer timeout; the test proves nothing"
    assert (job.attempts, job.recoveries, job.transient_failures) == (1, 0, 0)
    assert (job.finished_at - job.started_at).total_seconds() >= CONVERSION_SECONDS
    log = converter_log.read_text()
    assert log.count(f"consuming {broker.queue_name(broker.VIDEO)}") == 1, "the converter had to reconnect"
    assert "reconnecting" not in log
    sent = Counter(m["Subject"] for m in read_emails(tmp_path / "emails"))
    assert sum(sent.values()) == 1
