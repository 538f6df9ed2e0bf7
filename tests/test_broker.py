"""core.broker against the machine's RabbitMQ (queue names private to each test), and the in-process queue."""

import json
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction

from core import broker, workers
from core.broker import messages
from tests.support.services import free_port


def consume_in_thread(queue, handle, **kwargs):
    stop = threading.Event()
    thread = threading.Thread(target=broker.consume, args=(queue, handle), kwargs={"stop": stop, **kwargs}, daemon=True)
    thread.start()
    return stop, thread


def stop_and_join(stop, thread, timeout=10.0):
    stop.set()
    thread.join(timeout)
    assert not thread.is_alive(), "consume() did not return after stop was set"


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def queue_state(url: str, name: str) -> tuple[int, int] | None:
    """(messages, consumers) of a queue as RabbitMQ reports them on a connection of its own; None when absent."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method = connection.channel().queue_declare(broker.queue_name(name), passive=True).method
        return method.message_count, method.consumer_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return None
    finally:
        connection.close()


def publish_raw(url: str, name: str, body: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().basic_publish("", broker.queue_name(name), body, pika.BasicProperties(delivery_mode=2))
    connection.close()


class TcpProxy:
    """Forwards a local port to RabbitMQ; cut() drops every open connection, like a network fault.

    Lets a test break the client's connections without touching the machine's shared broker.
    """

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.target = (parts.hostname, parts.port or 5672)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        port = self.listener.getsockname()[1]
        credentials = parts.netloc.rpartition("@")[0]
        self.url = urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        self.closed = True
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(rabbitmq, settings):
    """AMQP_URL through a TcpProxy for the test; the direct URL again for the rabbitmq fixture's cleanup."""
    proxy = TcpProxy(rabbitmq)
    settings.AMQP_URL = proxy.url
    yield proxy
    settings.AMQP_URL = rabbitmq
    proxy.close()


# --- RabbitMQ --------------------------------------------------------------------------------


def test_queues_are_durable_quorum_queues_with_dead_letters(rabbitmq):
    broker.declare_queues()
    broker.declare_queues()  # idempotent: every role declares at start-up
    for name in ("video", "mp3", "video.dead", "mp3.dead"):
        assert queue_state(rabbitmq, name) == (0, 0)
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        # RabbitMQ refuses a redeclaration with other arguments (406), which shows the arguments it holds are ours.
        video = broker.queue_name(broker.VIDEO)
        arguments = messages.queue_arguments(broker.VIDEO)
        other_arguments = [
            {**arguments, "x-queue-type": "classic"},
            {**arguments, "x-delivery-limit": messages.DELIVERY_LIMIT + 1},
            {**arguments, "x-dead-letter-routing-key": "elsewhere"},
        ]
        for other in other_arguments:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                connection.channel().queue_declare(video, durable=True, arguments=other)
            assert refused.value.reply_code == 406
        connection.channel().queue_declare(video, durable=True, arguments=arguments)  # the same ones are accepted
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().queue_declare(
                broker.dead_letter_queue_name(broker.VIDEO), durable=True, arguments=arguments
            )  # a dead-letter queue does not dead-letter further
        assert refused.value.reply_code == 406
        connection.channel().queue_declare(
            broker.dead_letter_queue_name(broker.VIDEO), durable=True, arguments={"x-queue-type": "quorum"}
        )
    finally:
        connection.close()


def test_declaring_over_a_queue_with_other_arguments_is_a_broker_error(rabbitmq):
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    connection.channel().queue_declare(broker.queue_name(broker.VIDEO), durable=True)  # a classic queue, no DLX
    connection.close()
    with pytest.raises(broker.BrokerError, match="already has a queue"):
        broker.declare_queues()


def test_publish_then_consume_round_trip(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.VIDEO, "job-1", extra="ignored by old consumers")
    assert broker.queue_depth(broker.VIDEO) == 1
    received = []
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: received.append(message))
    wait_for(lambda: received)
    stop_and_join(stop, thread)
    assert received == [{"v": 1, "job_id": "job-1", "extra": "ignored by old consumers"}]
    assert queue_state(rabbitmq, broker.VIDEO) == (0, 0)  # acked, and the consumer is gone


def test_messages_are_persistent_json(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.MP3, "job-p")
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        method, properties, body = connection.channel().basic_get(broker.queue_name(broker.MP3), auto_ack=True)
    finally:
        connection.close()
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert json.loads(body) == {"v": 1, "job_id": "job-p"}


def test_publishing_to_a_queue_that_does_not_exist_is_refused(rabbitmq):
    with pytest.raises(broker.BrokerError, match="no queue"):
        broker.publish("nowhere", "job-x")


def test_publishing_after_the_queue_was_deleted_declares_it_again(rabbitmq):
    broker.publish(broker.VIDEO, "one")  # this thread's publisher declared the queues
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    connection.channel().queue_delete(broker.queue_name(broker.VIDEO))
    connection.close()
    broker.publish(broker.VIDEO, "two")
    assert broker.queue_depth(broker.VIDEO) == 1


def test_a_failing_handler_gets_the_message_again(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.MP3, "job-2")
    calls = []

    def flaky(message, acknowledge):
        calls.append(message)
        if len(calls) == 1:
            raise RuntimeError("transient")

    stop, thread = consume_in_thread(broker.MP3, flaky)
    wait_for(lambda: len(calls) >= 2)
    stop_and_join(stop, thread)
    assert [call["job_id"] for call in calls] == ["job-2", "job-2"]
    assert broker.queue_depth(broker.MP3) == 0 and broker.queue_depth("mp3.dead") == 0


def test_a_message_that_always_fails_is_dead_lettered_at_the_delivery_limit(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.MP3, "doomed")
    attempts = []

    def always_fails(message, acknowledge):
        attempts.append(message["job_id"])
        raise RuntimeError("a bug")

    stop, thread = consume_in_thread(broker.MP3, always_fails)
    wait_for(lambda: broker.queue_depth("mp3.dead") == 1, timeout=30)
    stop_and_join(stop, thread)
    # RabbitMQ 3.10 dead-letters once the delivery count exceeds the limit: the first try plus DELIVERY_LIMIT.
    assert len(attempts) == messages.DELIVERY_LIMIT + 1
    assert broker.queue_depth(broker.MP3) == 0


def test_a_rejected_message_is_dead_lettered_at_once(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.VIDEO, "no-such-job")
    attempts = []

    def reject(message, acknowledge):
        attempts.append(message["job_id"])
        raise broker.RejectMessage("no such job")

    stop, thread = consume_in_thread(broker.VIDEO, reject)
    wait_for(lambda: broker.queue_depth("video.dead") == 1)
    stop_and_join(stop, thread)
    assert attempts == ["no-such-job"]
    assert broker.queue_depth(broker.VIDEO) == 0


def test_a_handler_can_ack_early_and_takes_no_second_message_meanwhile(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.VIDEO, "long")
    broker.publish(broker.VIDEO, "next")
    acked, release = threading.Event(), threading.Event()
    handled = []

    def handler(message, acknowledge):
        handled.append(message["job_id"])
        if message["job_id"] == "long":
            acknowledge()  # returns once the ack is sent
            acknowledge()  # a second call changes nothing
            acked.set()
            assert release.wait(20)
            raise RuntimeError("fails after the ack")  # logged; the message is gone and not requeued

    stop, thread = consume_in_thread(broker.VIDEO, handler)
    assert acked.wait(10)
    # The ack has reached RabbitMQ and the consumer stepped back: "next" stays ready for another worker.
    wait_for(lambda: queue_state(rabbitmq, broker.VIDEO) == (1, 0))
    assert handled == ["long"]
    release.set()
    wait_for(lambda: handled == ["long", "next"])  # consuming again once the handler returned
    stop_and_join(stop, thread)
    assert broker.queue_depth(broker.VIDEO) == 0 and broker.queue_depth("video.dead") == 0


def test_the_worker_loop_owns_the_messages_its_job_handlers_never_see(rabbitmq):
    """core.workers.run_worker hands a handler the job id and on_claimed(): the message is acked when the
    handler calls it (the handler still working), and a job that does not exist is dead-lettered once."""
    broker.declare_queues()
    broker.publish(broker.VIDEO, "no-such-job")
    broker.publish(broker.VIDEO, "claimed")
    seen, claimed, release = [], threading.Event(), threading.Event()

    def handle_job(job_id, on_claimed):
        seen.append(job_id)
        if job_id == "no-such-job":
            raise ObjectDoesNotExist(f"no job {job_id}")
        on_claimed()
        claimed.set()
        assert release.wait(20)

    stop = threading.Event()
    thread = threading.Thread(target=workers.run_worker, args=(broker.VIDEO, handle_job), kwargs={"stop": stop})
    thread.start()
    try:
        assert claimed.wait(10)
        wait_for(lambda: queue_state(rabbitmq, broker.VIDEO)[0] == 0)  # acked while the handler works
        assert broker.queue_depth("video.dead") == 1 and seen == ["no-such-job", "claimed"]
    finally:
        release.set()
        stop_and_join(stop, thread)


def test_publish_dead_letter_leaves_a_trace_for_operators(rabbitmq):
    broker.declare_queues()
    broker.publish_dead_letter(broker.MP3, "job-d", reason="the email address bounced")
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        _, _, body = connection.channel().basic_get(broker.dead_letter_queue_name(broker.MP3), auto_ack=True)
    finally:
        connection.close()
    assert json.loads(body) == {"v": 1, "job_id": "job-d", "reason": "the email address bounced"}
    assert broker.queue_depth(broker.MP3) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b'{"v": 2, "job_id": "x"}',
        b'{"v": true, "job_id": "x"}',
        b'{"v": 1}',
        b'{"v": 1, "job_id": ""}',
        b"[1, 2]",
    ],
)
def test_unusable_messages_go_to_the_dead_letter_queue(rabbitmq, body):
    broker.declare_queues()
    publish_raw(rabbitmq, broker.VIDEO, body)
    broker.publish(broker.VIDEO, "good")  # behind the poison one: the consumer carries on
    handled = []
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: handled.append(message))
    try:
        wait_for(lambda: handled)
    finally:
        stop_and_join(stop, thread)
    assert handled == [{"v": 1, "job_id": "good"}]
    assert broker.queue_depth(broker.VIDEO) == 0
    assert broker.queue_depth("video.dead") == 1


def test_stop_returns_promptly_when_idle(rabbitmq):
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: None)
    wait_for(lambda: queue_state(rabbitmq, broker.VIDEO) == (0, 1))
    stop_and_join(stop, thread, timeout=3)
    assert queue_state(rabbitmq, broker.VIDEO) == (0, 0)


def test_stop_lets_the_running_handler_finish_and_takes_nothing_more(rabbitmq):
    broker.declare_queues()
    broker.publish(broker.VIDEO, "first")
    broker.publish(broker.VIDEO, "second")
    started, release = threading.Event(), threading.Event()
    handled = []

    def handler(message, acknowledge):
        started.set()
        assert release.wait(20)
        handled.append(message["job_id"])

    stop, thread = consume_in_thread(broker.VIDEO, handler)
    assert started.wait(10)
    stop.set()
    time.sleep(1.5)  # consume() looks at `stop` at least once a second
    assert thread.is_alive()  # it waits for the handler...
    release.set()
    stop_and_join(stop, thread)
    assert handled == ["first"]
    assert queue_state(rabbitmq, broker.VIDEO) == (1, 0)  # ..."first" was acked, "second" waits for the next worker
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        method, properties, body = connection.channel().basic_get(broker.queue_name(broker.VIDEO), auto_ack=True)
    finally:
        connection.close()
    # The consumer was cancelled before the ack, so "second" was never delivered and handed back:
    # its delivery count, which the delivery limit watches, is untouched.
    assert json.loads(body)["job_id"] == "second"
    assert not method.redelivered and not (properties.headers or {}).get("x-delivery-count")


def test_heartbeats_flow_while_a_long_handler_runs(rabbitmq, settings):
    """With a 2 s heartbeat, a 6 s handler would lose its connection unless the I/O loop keeps turning."""
    settings.AMQP_URL = with_query(rabbitmq, "heartbeat=2")
    broker.declare_queues()
    broker.publish(broker.VIDEO, "slow-job")
    broker.publish(broker.VIDEO, "next-job")
    done = []

    def slow(message, acknowledge):
        if message["job_id"] == "slow-job":
            time.sleep(6)
        done.append(message["job_id"])

    stop, thread = consume_in_thread(broker.VIDEO, slow)
    wait_for(lambda: len(done) == 2, timeout=30)
    stop_and_join(stop, thread)
    # A lost connection would have redelivered slow-job: exactly once each, both acked.
    assert done == ["slow-job", "next-job"]
    assert broker.queue_depth(broker.VIDEO) == 0


def test_the_consumer_reconnects_after_a_network_fault(proxy, caplog):
    """Both the consumer and this thread's publisher connect through the proxy, which then cuts them."""
    broker.declare_queues()
    received = []
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: received.append(message["job_id"]))
    broker.publish(broker.VIDEO, "before")
    wait_for(lambda: received == ["before"])

    try:
        proxy.cut()
        # Publish once the consumer is back: a message published while the broker still holds the cut
        # consumer's channel open could go to that channel and wait for the broker's own heartbeat timeout.
        # Bounds, not timings: on a loaded 2-core CI machine the reconnection once took longer than 15 s.
        wait_for(lambda: sum(r.getMessage().startswith("consuming ") for r in caplog.records) >= 2, timeout=45)
        broker.publish(broker.VIDEO, "after")  # the publisher's connection was cut too: it reopens once
        wait_for(lambda: received == ["before", "after"], timeout=45)
        assert thread.is_alive()
    finally:
        stop_and_join(stop, thread)
    assert "lost the connection to RabbitMQ" in caplog.text
    assert broker.queue_depth(broker.VIDEO) == 0


def test_the_heartbeat_keeps_beating_while_a_handler_outlives_a_broker_disconnect(proxy, caplog):
    """The consumer waits for its running handler before it reconnects; the worker is busy, not hung,
    so the liveness heartbeat (on_alive) must go on meanwhile."""
    broker.declare_queues()
    beats: list[float] = []
    started, finished = threading.Event(), threading.Event()

    def long_handler(message, acknowledge):
        started.set()
        time.sleep(8)
        finished.set()

    stop, thread = consume_in_thread(broker.VIDEO, long_handler, on_alive=lambda: beats.append(time.monotonic()))
    try:
        broker.publish(broker.VIDEO, "long")
        wait_for(started.is_set)
        proxy.cut()
        cut_at = time.monotonic()
        wait_for(finished.is_set, timeout=20)
        during = [beat for beat in beats if cut_at + 1 < beat < time.monotonic()]
        gaps = [later - earlier for earlier, later in zip([cut_at, *during], during, strict=False)]
        assert "waiting for the running handler" in caplog.text
        assert len(during) >= 4 and max(gaps) < 2.5, (len(during), gaps)
    finally:
        stop_and_join(stop, thread, timeout=30)


def test_the_consumer_comes_back_when_its_queue_is_deleted(rabbitmq):
    broker.declare_queues()
    received = []
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: received.append(message["job_id"]))
    wait_for(lambda: queue_state(rabbitmq, broker.VIDEO) == (0, 1))
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    connection.channel().queue_delete(broker.queue_name(broker.VIDEO))  # RabbitMQ cancels the consumer
    connection.close()
    wait_for(lambda: queue_state(rabbitmq, broker.VIDEO) == (0, 1))  # redeclared and consuming again
    broker.publish(broker.VIDEO, "after")
    wait_for(lambda: received == ["after"])
    stop_and_join(stop, thread)


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
    settings.AMQP_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    broker.reset()
    try:
        for call in (lambda: broker.publish(broker.VIDEO, "x"), broker.ping, broker.declare_queues):
            with pytest.raises(broker.BrokerError) as error:
                call()
            assert str(error.value) == "The message broker (RabbitMQ) is unreachable; try again in a minute."
    finally:
        broker.reset()


def test_consume_keeps_retrying_an_unreachable_broker_until_stopped(settings, caplog):
    settings.AMQP_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: None)
    wait_for(lambda: caplog.text.count("cannot connect to RabbitMQ") >= 2)  # after 1 s, then 2 s
    stop_and_join(stop, thread, timeout=3)
    assert "retrying in 1 s" in caplog.text and "retrying in 2 s" in caplog.text


# --- in-process --------------------------------------------------------------------------------


@pytest.fixture
def in_process(settings):
    settings.AMQP_URL = ""
    settings.QUEUE_PREFIX = ""
    broker.reset()
    yield
    broker.reset()


def test_in_process_round_trip_and_dead_letters(in_process):
    broker.declare_queues()
    broker.publish(broker.VIDEO, "job-3", extra=1)
    broker._transport().publish(broker.VIDEO, b"garbage")
    received = []
    stop, thread = consume_in_thread(broker.VIDEO, lambda message, acknowledge: received.append(message))
    wait_for(lambda: received and broker.queue_depth("video.dead") == 1)
    stop_and_join(stop, thread, timeout=3)
    assert received == [{"v": 1, "job_id": "job-3", "extra": 1}]
    assert broker.queue_depth(broker.VIDEO) == 0
    broker.delete_queues()  # nothing to delete, and no error


def test_in_process_failures_are_retried_up_to_the_delivery_limit(in_process):
    broker.publish(broker.MP3, "flaky")
    broker.publish(broker.MP3, "doomed")
    attempts = []

    def handler(message, acknowledge):
        attempts.append(message["job_id"])
        if message["job_id"] == "doomed" or attempts.count("flaky") == 1:
            raise RuntimeError("boom")

    stop, thread = consume_in_thread(broker.MP3, handler)
    wait_for(lambda: broker.queue_depth("mp3.dead") == 1)
    stop_and_join(stop, thread, timeout=3)
    assert attempts.count("flaky") == 2
    assert attempts.count("doomed") == messages.DELIVERY_LIMIT + 1  # as RabbitMQ counts
    assert broker.queue_depth(broker.MP3) == 0


def test_in_process_reject_and_early_ack(in_process):
    broker.publish(broker.VIDEO, "rejected")
    broker.publish(broker.VIDEO, "acked-then-failed")
    broker.publish_dead_letter(broker.VIDEO, "by-hand", reason="a trace")
    attempts = []

    def handler(message, acknowledge):
        attempts.append(message["job_id"])
        if message["job_id"] == "rejected":
            raise broker.RejectMessage("no such job")
        acknowledge()
        raise RuntimeError("fails after the ack")

    stop, thread = consume_in_thread(broker.VIDEO, handler)
    wait_for(lambda: len(attempts) == 2 and broker.queue_depth(broker.VIDEO) == 0)
    stop_and_join(stop, thread, timeout=3)
    assert attempts == ["rejected", "acked-then-failed"]
    assert broker.queue_depth("video.dead") == 2  # the rejected one and the one put there by hand


@pytest.mark.django_db(transaction=True)
def test_in_process_publish_on_commit(in_process):
    with transaction.atomic():
        broker.publish_on_commit(broker.VIDEO, "committed")
        assert broker.queue_depth(broker.VIDEO) == 0
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        broker.publish_on_commit(broker.VIDEO, "rolled-back")
        1 / 0  # noqa: B018
    assert broker.queue_depth(broker.VIDEO) == 1


def test_encode_and_decode():
    assert json.loads(broker.encode("j", attempt=2)) == {"v": 1, "job_id": "j", "attempt": 2}
    assert broker.decode(broker.encode("j")) == {"v": 1, "job_id": "j"}
    with pytest.raises(ValueError):
        broker.decode(b'{"v": 1.0, "job_id": "j"}')  # 1.0 == 1 in Python; the version is an integer
