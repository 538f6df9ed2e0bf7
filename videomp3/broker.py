"""The message broker: the only module that imports pika.

Messages are JSON `{"v": 1, "job_id": "<uuid>"}` plus optional fields. With AMQP_URL set they go
through RabbitMQ: durable quorum queues that dead-letter to `<name>.dead`, persistent messages,
publisher confirms, publishing only after the job's transaction commits. With AMQP_URL empty
an in-process queue stands in, valid only when every role runs in one process (`make run`).
"""

import json
import logging
import queue as queue_module
import threading
from collections.abc import Callable
from functools import partial

import pika
from django.conf import settings
from django.db import transaction
from pika.exceptions import AMQPError, NackError, UnroutableError

logger = logging.getLogger(__name__)

VIDEO = "video"
MP3 = "mp3"
QUEUES = (VIDEO, MP3)
MESSAGE_VERSION = 1
# RabbitMQ dead-letters a message after this many deliveries (on 3.10 a nack with requeue counts too),
# so a message that crashes its consumer every time cannot loop forever.
DELIVERY_LIMIT = 20
MAX_RECONNECT_DELAY = 30.0

Handler = Callable[[dict], object]


class BrokerError(Exception):
    """The broker is unreachable or refused a message; str() is a sentence."""


def queue_name(name: str) -> str:
    return settings.QUEUE_PREFIX + name


def dead_letter_queue_name(name: str) -> str:
    return queue_name(f"{name}.dead")


def queue_arguments(name: str) -> dict:
    """The one place queue arguments live: RabbitMQ refuses to redeclare a queue with other arguments."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue_name(name),
        "x-delivery-limit": DELIVERY_LIMIT,
    }


def encode(job_id: str, **extra) -> bytes:
    return json.dumps({"v": MESSAGE_VERSION, "job_id": str(job_id), **extra}).encode()


def decode(body: bytes) -> dict:
    """The message, or ValueError for a body no consumer can act on."""
    try:
        message = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("v") != MESSAGE_VERSION:
        raise ValueError(f"unknown message version: {message.get('v') if isinstance(message, dict) else message!r}")
    if not isinstance(message.get("job_id"), str) or not message["job_id"]:
        raise ValueError("no job_id")
    return message


class RabbitTransport:
    def __init__(self, url: str):
        self.url = url
        self._local = threading.local()  # pika connections must never cross threads
        self._publishers: list[pika.BlockingConnection] = []
        self._publishers_lock = threading.Lock()

    def _parameters(self) -> pika.URLParameters:
        parameters = pika.URLParameters(self.url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 10
        parameters.blocked_connection_timeout = 60
        return parameters

    def connect(self) -> pika.BlockingConnection:
        try:
            return pika.BlockingConnection(self._parameters())
        except AMQPError as exc:
            raise BrokerError("The message broker (RabbitMQ) is unreachable; try again in a minute.") from exc

    def declare_queues(self, channel=None) -> None:
        if channel is None:
            with _closing(self.connect()) as connection:
                self.declare_queues(connection.channel())
            return
        for name in QUEUES:
            channel.queue_declare(dead_letter_queue_name(name), durable=True, arguments={"x-queue-type": "quorum"})
            channel.queue_declare(queue_name(name), durable=True, arguments=queue_arguments(name))

    def _publish_channel(self):
        channel = getattr(self._local, "channel", None)
        if channel is not None and channel.is_open and channel.connection.is_open:
            return channel
        connection = self.connect()
        with self._publishers_lock:
            self._publishers.append(connection)
        channel = connection.channel()
        channel.confirm_delivery()
        self.declare_queues(channel)
        self._local.channel = channel
        return channel

    def publish(self, queue: str, body: bytes) -> None:
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
        for attempt in (1, 2):  # a publisher connection may have died while idle: reopen once
            try:
                self._publish_channel().basic_publish(
                    exchange="", routing_key=queue_name(queue), body=body, properties=properties, mandatory=True
                )
                return
            except (UnroutableError, NackError) as exc:
                raise BrokerError(f"RabbitMQ refused the message for queue {queue_name(queue)}.") from exc
            except AMQPError as exc:
                self._local.channel = None
                if attempt == 2:
                    raise BrokerError("The message broker (RabbitMQ) is unreachable; try again in a minute.") from exc
                logger.warning("publisher connection lost (%s); reconnecting", exc.__class__.__name__)

    def consume(self, queue: str, handle: Handler, *, stop: threading.Event, prefetch: int, on_alive) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                connection = self.connect()
            except BrokerError as exc:
                logger.warning("%s Retrying in %.0f s.", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
                continue
            delay = 1.0
            try:
                self._consume_on(connection, queue, handle, stop=stop, prefetch=prefetch, on_alive=on_alive)
            except AMQPError as exc:
                logger.warning("lost the connection to RabbitMQ (%s); reconnecting", exc.__class__.__name__)
            finally:
                if connection.is_open:
                    try:
                        connection.close()
                    except AMQPError:
                        pass

    def _consume_on(self, connection, queue: str, handle: Handler, *, stop, prefetch: int, on_alive) -> None:
        channel = connection.channel()
        self.declare_queues(channel)
        channel.basic_qos(prefetch_count=prefetch)
        deliveries: list[tuple[int, bytes]] = []
        consumer_tag = channel.basic_consume(
            queue_name(queue), lambda _channel, method, _properties, body: deliveries.append((method.delivery_tag, body))
        )
        logger.info("consuming %s", queue_name(queue))
        while not stop.is_set():
            on_alive()
            connection.process_data_events(time_limit=1)
            while deliveries and not stop.is_set():
                delivery_tag, body = deliveries.pop(0)
                self._handle_delivery(connection, channel, delivery_tag, body, handle, on_alive)
        channel.basic_cancel(consumer_tag)
        for delivery_tag, _ in deliveries:  # prefetched but not started: hand them back
            channel.basic_nack(delivery_tag, requeue=True)

    def _handle_delivery(self, connection, channel, delivery_tag: int, body: bytes, handle: Handler, on_alive) -> None:
        try:
            message = decode(body)
        except ValueError as exc:
            logger.error("dead-lettering an unusable message (%s): %r", exc, body[:200])
            channel.basic_nack(delivery_tag, requeue=False)
            return
        # The work runs off this thread so the connection keeps answering heartbeats however long it takes.
        finished = threading.Event()
        failure: list[BaseException] = []

        def work():
            try:
                handle(message)
            except BaseException as exc:  # noqa: BLE001 - reported to the connection thread
                failure.append(exc)
            finally:
                finished.set()

        threading.Thread(target=work, name=f"handle-{message['job_id']}", daemon=True).start()
        try:
            while not finished.is_set():
                on_alive()
                connection.process_data_events(time_limit=0.5)
        except AMQPError:
            finished.wait()  # the delivery is requeued by the broker; let the work end before reconnecting
            raise
        if failure:
            logger.error("handling %s failed; requeueing it", message, exc_info=failure[0])
            channel.basic_nack(delivery_tag, requeue=True)
        else:
            channel.basic_ack(delivery_tag)

    def queue_depth(self, queue: str) -> int:
        with _closing(self.connect()) as connection:
            channel = connection.channel()
            self.declare_queues(channel)
            return channel.queue_declare(queue_name(queue), passive=True).method.message_count

    def ping(self) -> None:
        self.connect().close()

    def reset(self) -> None:
        with self._publishers_lock:
            publishers, self._publishers = self._publishers, []
        for connection in publishers:
            try:
                if connection.is_open:
                    connection.close()
            except AMQPError:
                pass
        self._local = threading.local()

    def delete_queues(self) -> None:
        with _closing(self.connect()) as connection:
            channel = connection.channel()
            for name in QUEUES:
                channel.queue_delete(queue_name(name))
                channel.queue_delete(dead_letter_queue_name(name))


class MemoryTransport:
    """In-process queues for the embedded mode; the same message bodies, delivery limit and dead letters."""

    def __init__(self):
        self._queues: dict[str, queue_module.Queue] = {}
        self._lock = threading.Lock()

    def _queue(self, full_name: str) -> queue_module.Queue:
        with self._lock:
            return self._queues.setdefault(full_name, queue_module.Queue())

    def declare_queues(self, channel=None) -> None:
        for name in QUEUES:
            self._queue(queue_name(name))
            self._queue(dead_letter_queue_name(name))

    def publish(self, queue: str, body: bytes, deliveries: int = 0) -> None:
        self._queue(queue_name(queue)).put((body, deliveries))

    def consume(self, queue: str, handle: Handler, *, stop: threading.Event, prefetch: int, on_alive) -> None:
        source = self._queue(queue_name(queue))
        while not stop.is_set():
            on_alive()
            try:
                body, deliveries = source.get(timeout=0.5)
            except queue_module.Empty:
                continue
            try:
                handle(decode(body))
            except ValueError as exc:
                logger.error("dead-lettering an unusable message (%s): %r", exc, body[:200])
                self._queue(dead_letter_queue_name(queue)).put((body, deliveries))
            except Exception:
                logger.exception("handling a %s message failed; requeueing it", queue)
                target = queue if deliveries + 1 < DELIVERY_LIMIT else f"{queue}.dead"
                self._queue(queue_name(target)).put((body, deliveries + 1))

    def queue_depth(self, queue: str) -> int:
        return self._queue(queue_name(queue)).qsize()

    def ping(self) -> None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()

    def delete_queues(self) -> None:
        self.reset()


class _closing:
    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        return self.connection

    def __exit__(self, *exc_info):
        try:
            self.connection.close()
        except AMQPError:
            pass


_transports: dict[str, RabbitTransport | MemoryTransport] = {}
_transports_lock = threading.Lock()


def _transport() -> RabbitTransport | MemoryTransport:
    url = settings.AMQP_URL
    with _transports_lock:
        if url not in _transports:
            _transports[url] = RabbitTransport(url) if url else MemoryTransport()
        return _transports[url]


def declare_queues() -> None:
    """Declare the work queues and their dead-letter queues (idempotent; every role does it at start-up)."""
    _transport().declare_queues()


def publish(queue: str, job_id: str, **extra) -> None:
    """Publish now: persistent, confirmed by the broker. Raises BrokerError."""
    _transport().publish(queue, encode(job_id, **extra))


def publish_on_commit(queue: str, job_id: str, **extra) -> None:
    """Publish once the current transaction commits, so a consumer never sees an uncommitted job.

    robust: a broker outage must not turn a committed upload into an error; the job stays
    `queued` in the database, where recovery finds it.
    """
    transaction.on_commit(partial(publish, queue, job_id, **extra), robust=True)


def consume(
    queue: str, handle: Handler, *, stop: threading.Event, prefetch: int = 1, on_alive: Callable[[], None] = lambda: None
) -> None:
    """Feed each message of `queue` to `handle` until `stop` is set; ack after it returns, requeue if it raises."""
    _transport().consume(queue, handle, stop=stop, prefetch=prefetch, on_alive=on_alive)


def queue_depth(queue: str) -> int:
    return _transport().queue_depth(queue)


def ping() -> None:
    _transport().ping()


def reset() -> None:
    """Close publisher connections and forget in-process messages (tests, forked processes)."""
    with _transports_lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        transport.reset()


def delete_queues() -> None:
    _transport().delete_queues()
