"""videomp3.broker against the machine's RabbitMQ (queue names private to each test), and the in-process queue."""

import json
import threading
import time

import pika
import pytest
from django.db import transaction

from videomp3 import broker


def consume_in_thread(queue, handle, **kwargs):
    stop = threading.Event()
    thread = threading.Thread(target=broker.consume, args=(queue, handle), kwargs={"stop": stop, **kwargs}, daemon=True)
    thread.start()
    return stop, thread


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def raw_channel(url):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    return connection, connection.channel()


def test_queues_are_durable_quorum_queues_with_dead_letters(rabbitmq):
    broker.declare_queues()
    broker.declare_queues()  # idempotent: every role declares at start-up
    connection, channel = raw_channel(rabbitmq)
    try:
        channel.queue_declare(broker.queue_name(broker.VIDEO), passive=True)
        channel.queue_declare(broker.dead_letter_queue_name(broker.VIDEO), passive=True)
        # Redeclaring with other arguments is refused: proves the arguments RabbitMQ holds are ours.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.queue_declare(broker.queue_name(broker.VIDEO), durable=True, arguments={"x-queue-type": "classic"})
        assert refused.value.reply_code == 406
        channel = connection.channel()
        channel.queue_declare(broker.queue_name(broker.VIDEO), durable=True, arguments=broker.queue_arguments(broker.VIDEO))
    finally:
        connection.close()


def test_publish_then_consume_round_trip(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.VIDEO, "job-1", extra="ignored by old consumers")
    assert broker.queue_depth(broker.VIDEO) == 1
    received = []
    stop, thread = consume_in_thread(broker.VIDEO, received.append)
    wait_for(lambda: received)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert received == [{"v": 1, "job_id": "job-1", "extra": "ignored by old consumers"}]
    assert broker.queue_depth(broker.VIDEO) == 0  # acked


def test_a_failing_handler_gets_the_message_again(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.MP3, "job-2")
    calls = []

    def flaky(message):
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("transient")

    stop, thread = consume_in_thread(broker.MP3, flaky)
    wait_for(lambda: len(calls) >= 2)
    stop.set()
    thread.join(10)
    assert [call["job_id"] for call in calls] == ["job-2", "job-2"]


@pytest.mark.parametrize("body", [b"not json", b'{"v": 2, "job_id": "x"}', b'{"v": 1}', b"[1, 2]"])
def test_unusable_messages_go_to_the_dead_letter_queue(rabbitmq, body):
    broker.declare_queues()
    connection, channel = raw_channel(rabbitmq)
    channel.basic_publish("", broker.queue_name(broker.VIDEO), body, pika.BasicProperties(delivery_mode=2))
    connection.close()
    handled = []
    stop, thread = consume_in_thread(broker.VIDEO, handled.append)
    try:
        wait_for(lambda: broker.queue_depth("video.dead") == 1)
    finally:
        stop.set()
        thread.join(10)
    assert handled == []
    assert broker.queue_depth(broker.VIDEO) == 0


def test_stop_returns_promptly_when_idle(rabbitmq):
    stop, thread = consume_in_thread(broker.VIDEO, lambda message: None)
    time.sleep(1)
    started = time.monotonic()
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 3


def test_heartbeats_flow_while_a_long_handler_runs(rabbitmq, settings):
    """With a 2 s heartbeat, a 7 s handler would lose its connection unless the I/O loop keeps turning."""
    settings.AMQP_URL = rabbitmq + ("&" if "?" in rabbitmq else "?") + "heartbeat=2"
    broker.declare_queues()
    broker.publish(broker.VIDEO, "slow-job")
    broker.publish(broker.VIDEO, "next-job")
    done = []

    def slow(message):
        if message["job_id"] == "slow-job":
            time.sleep(7)
        done.append(message["job_id"])

    stop, thread = consume_in_thread(broker.VIDEO, slow)
    wait_for(lambda: len(done) == 2, timeout=30)
    stop.set()
    thread.join(10)
    assert done == ["slow-job", "next-job"]
    assert broker.queue_depth(broker.VIDEO) == 0  # both acked on the same, still-open connection


@pytest.mark.django_db(transaction=True)
def test_publish_on_commit_waits_for_the_commit(rabbitmq):
    broker.declare_queues()
    with transaction.atomic():
        broker.publish_on_commit(broker.VIDEO, "committed")
        assert broker.queue_depth(broker.VIDEO) == 0
    assert broker.queue_depth(broker.VIDEO) == 1
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        broker.publish_on_commit(broker.VIDEO, "rolled-back")
        1 / 0  # noqa: B018
    assert broker.queue_depth(broker.VIDEO) == 1


def test_unreachable_broker_is_a_broker_error(settings):
    from tests.support.services import free_port

    settings.AMQP_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    broker.reset()
    with pytest.raises(broker.BrokerError) as error:
        broker.publish(broker.VIDEO, "x")
    assert "unreachable" in str(error.value)
    broker.reset()


def test_in_process_transport_round_trip_and_dead_letters(settings):
    settings.AMQP_URL = ""
    broker.reset()
    broker.declare_queues()
    broker.publish(broker.VIDEO, "job-3")
    broker._transport().publish(broker.VIDEO, b"garbage")
    received = []
    stop, thread = consume_in_thread(broker.VIDEO, received.append)
    wait_for(lambda: received and broker.queue_depth("video.dead") == 1)
    stop.set()
    thread.join(5)
    assert received == [{"v": 1, "job_id": "job-3"}]
    assert json.loads(broker.encode("j")) == {"v": 1, "job_id": "j"}
    broker.reset()
