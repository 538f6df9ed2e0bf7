"""The RabbitMQ transport: the only module that imports pika.

Durable quorum queues that dead-letter to `<name>.dead`, persistent messages, publisher confirms.
pika is not thread-safe: every connection here belongs to exactly one thread (the only
cross-thread call is `add_callback_threadsafe`, which exists for that purpose).
"""

import logging
import queue as queue_module
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pika
from django.conf import settings
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker, ConsumerCancelled, NackError, UnroutableError

from core.broker.messages import (
    DEAD_LETTER_QUEUE_ARGUMENTS,
    QUEUES,
    UNREACHABLE,
    BrokerError,
    Handler,
    RejectMessage,
    dead_letter_queue_name,
    decode,
    queue_arguments,
    queue_name,
)

logger = logging.getLogger(__name__)

# Proposed unless the URL sets `heartbeat=`: a dead peer is noticed within about a minute.
DEFAULT_HEARTBEAT_SECONDS = 30
# A publisher blocked by a broker resource alarm gives up after this long instead of hanging a request.
DEFAULT_BLOCKED_CONNECTION_TIMEOUT_SECONDS = 60
MAX_RECONNECT_DELAY = 30.0
# How long a handler's acknowledge() waits for the consuming thread to send the ack.
EARLY_ACK_WAIT_SECONDS = 10.0


def _parameters(url: str) -> pika.URLParameters:
    parameters = pika.URLParameters(url)
    given = {name.lower() for name in parse_qs(urlsplit(url).query)}
    # Defaults only where the URL is silent, so an operator can tune them in AMQP_URL.
    if "heartbeat" not in given:
        parameters.heartbeat = DEFAULT_HEARTBEAT_SECONDS
    if "blocked_connection_timeout" not in given:
        parameters.blocked_connection_timeout = DEFAULT_BLOCKED_CONNECTION_TIMEOUT_SECONDS
    if "connection_attempts" not in given:
        parameters.connection_attempts = 1  # callers decide how to retry
    return parameters


def _close_quietly(connection: pika.BlockingConnection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except AMQPError as exc:
        logger.debug("closing a broker connection failed: %s", exc)


class _Backoff:
    """Capped exponential delays between reconnections: 1 s, 2 s, 4 s ... 30 s."""

    def __init__(self):
        self.delay = 1.0

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, MAX_RECONNECT_DELAY)
        return delay

    def reset(self) -> None:
        self.delay = 1.0


@dataclass
class _Delivery:
    """One message being handled. The handler thread only sets events (and wakes the connection
    thread); the connection thread alone calls the channel, so the connection never crosses threads."""

    delivery_tag: int
    message: dict
    failure: BaseException | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    ack_requested: threading.Event = field(default_factory=threading.Event)
    ack_sent: threading.Event = field(default_factory=threading.Event)
    acked: bool = False


def _wake() -> None:
    """Scheduled with add_callback_threadsafe only to make process_data_events return early."""


class _HandlerThread:
    """Runs handlers one at a time on one thread that lasts as long as the consume() call.

    One thread rather than one per message, because a handler that publishes opens a publisher
    connection for its thread: this way there is one, reused, and closed when consuming ends.
    Daemon, so a stuck handler never keeps the process alive after the worker's second signal.
    """

    def __init__(self, name: str, on_exit: Callable[[], None]):
        self._tasks: queue_module.SimpleQueue[Callable[[], None] | None] = queue_module.SimpleQueue()
        self._on_exit = on_exit
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception:  # a task is not supposed to raise; never let one end the thread
                logger.exception("a handler task failed")
        try:
            self._on_exit()
        except Exception:
            logger.exception("cleaning up the handler thread failed")

    def submit(self, task: Callable[[], None]) -> None:
        self._tasks.put(task)

    def close(self, timeout: float = 10) -> None:
        self._tasks.put(None)
        self._thread.join(timeout)


def _wait_alive(stop: threading.Event, seconds: float, on_alive) -> None:
    """Wait for a reconnect while still reporting alive: a worker waiting for its broker is not hung."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
        on_alive()
        stop.wait(min(1.0, remaining))


class RabbitTransport:
    def __init__(self, url: str):
        self.url = url
        # One publisher channel per thread; kept here (not in a threading.local) so reset() can
        # close them all and connections of threads that have ended can be closed.
        self._publishers: dict[threading.Thread, BlockingChannel] = {}
        self._publishers_lock = threading.Lock()

    def connect(self) -> pika.BlockingConnection:
        try:
            return pika.BlockingConnection(_parameters(self.url))
        except AMQPError as exc:
            raise BrokerError(UNREACHABLE) from exc

    def declare_queues(self, channel: BlockingChannel | None = None) -> None:
        if channel is None:
            connection = self.connect()
            try:
                self.declare_queues(connection.channel())
            except AMQPError as exc:
                raise BrokerError(UNREACHABLE) from exc
            finally:
                _close_quietly(connection)
            return
        for name in QUEUES:
            try:
                # The dead-letter queue first, so nothing is ever dead-lettered into the void.
                channel.queue_declare(dead_letter_queue_name(name), durable=True, arguments=DEAD_LETTER_QUEUE_ARGUMENTS)
                channel.queue_declare(queue_name(name), durable=True, arguments=queue_arguments(name))
            except ChannelClosedByBroker as exc:
                # Configuration problems, not outages: a consumer stops instead of reconnecting forever.
                if exc.reply_code == 406:  # PRECONDITION_FAILED: it exists with other arguments
                    raise BrokerError(
                        f"RabbitMQ already has a queue {queue_name(name)} (or its .dead queue) with other settings; "
                        "delete it or set QUEUE_PREFIX so this version can declare its own."
                    ) from exc
                raise BrokerError(
                    f"RabbitMQ refused to declare the queue {queue_name(name)} ({exc.reply_text}); "
                    "check the permissions of the user in AMQP_URL."
                ) from exc

    # --- publishing

    def _publish_channel(self) -> BlockingChannel:
        me = threading.current_thread()
        with self._publishers_lock:
            channel = self._publishers.get(me)
            ended = [thread for thread in self._publishers if not thread.is_alive()]
            orphans = [self._publishers.pop(thread) for thread in ended]
        for orphan in orphans:  # their threads are gone, so nobody else touches these connections
            _close_quietly(orphan.connection)
        if channel is not None and channel.is_open and channel.connection.is_open:
            return channel
        connection = self.connect()
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            # A queue must exist before a mandatory publish; declaring is idempotent.
            self.declare_queues(channel)
        except BaseException:
            _close_quietly(connection)
            raise
        with self._publishers_lock:
            self._publishers[me] = channel
        return channel

    def close_thread_publisher(self) -> None:
        """Close the calling thread's publisher connection, if it has one."""
        with self._publishers_lock:
            channel = self._publishers.pop(threading.current_thread(), None)
        if channel is not None:
            _close_quietly(channel.connection)

    def publish(self, queue: str, body: bytes) -> None:
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
        for attempt in (1, 2):
            try:
                channel = self._publish_channel()  # BrokerError when it cannot connect at all
                channel.basic_publish(
                    exchange="", routing_key=queue_name(queue), body=body, properties=properties, mandatory=True
                )
                return
            except UnroutableError as exc:
                # Deleted since this connection declared it: a new connection declares the queues again.
                self.close_thread_publisher()
                if attempt == 2:
                    raise BrokerError(f"RabbitMQ has no queue {queue_name(queue)} to take the message.") from exc
            except NackError as exc:
                raise BrokerError(f"RabbitMQ refused the message for queue {queue_name(queue)}.") from exc
            except AMQPError as exc:
                # An idle publisher misses heartbeats and the broker drops it: reopen once.
                self.close_thread_publisher()
                if attempt == 2:
                    raise BrokerError(UNREACHABLE) from exc
                logger.info("publisher connection lost (%s); reconnecting", exc.__class__.__name__)

    # --- consuming

    def consume(self, queue: str, handle: Handler, *, stop: threading.Event, prefetch: int, on_alive) -> None:
        runner = _HandlerThread(f"handle-{queue_name(queue)}", on_exit=self.close_thread_publisher)
        backoff = _Backoff()
        try:
            while not stop.is_set():
                try:
                    connection = self.connect()
                except BrokerError as exc:
                    delay = backoff.next()
                    logger.warning("cannot connect to RabbitMQ (%r); retrying in %.0f s", exc.__cause__, delay)
                    _wait_alive(stop, delay, on_alive)
                    continue
                try:
                    self._consume_on(connection, queue, handle, stop, prefetch, on_alive, runner, backoff)
                except AMQPError as exc:
                    delay = backoff.next()
                    logger.warning(
                        "lost the connection to RabbitMQ while consuming %s (%s: %s); reconnecting in %.0f s",
                        queue_name(queue),
                        exc.__class__.__name__,
                        exc,
                        delay,
                    )
                    _wait_alive(stop, delay, on_alive)
                finally:
                    _close_quietly(connection)
        finally:
            runner.close()

    def _consume_on(self, connection, queue, handle, stop, prefetch, on_alive, runner, backoff) -> None:
        """Consume on one connection until `stop` (returns) or the connection fails (raises AMQPError)."""
        channel = connection.channel()
        self.declare_queues(channel)
        channel.basic_qos(prefetch_count=prefetch)
        waiting: deque[tuple[int, bytes]] = deque()
        # The broker cancels a consumer whose queue was deleted; without noticing, the loop would idle forever.
        cancelled_by_broker: list[object] = []
        channel.add_on_cancel_callback(cancelled_by_broker.append)

        def subscribe() -> str:
            return channel.basic_consume(
                queue_name(queue), lambda _ch, method, _properties, body: waiting.append((method.delivery_tag, body))
            )

        consumer_tag = subscribe()
        backoff.reset()
        logger.info("consuming %s", queue_name(queue))
        consuming = True
        paused = False  # unsubscribed while a handler that acked early still works
        current: _Delivery | None = None
        try:
            while True:
                on_alive()
                if consuming and (stop.is_set() or cancelled_by_broker):
                    # No new deliveries; pika nacks the ones it has not dispatched, we hand back ours.
                    if not cancelled_by_broker:
                        channel.basic_cancel(consumer_tag)
                    consuming = paused = False
                    while waiting:
                        channel.basic_nack(waiting.popleft()[0], requeue=True)
                if current is not None and current.ack_requested.is_set() and not current.acked:
                    if consuming:
                        # Acking frees the prefetch window: unsubscribe first, so the broker does not hand
                        # this worker a second message to sit on while the first one's work goes on.
                        channel.basic_cancel(consumer_tag)
                        consuming, paused = False, True
                    channel.basic_ack(current.delivery_tag)
                    current.acked = True
                    current.ack_sent.set()
                if current is not None and current.finished.is_set():
                    self._settle(channel, current)
                    current = None
                if current is None:
                    if paused and not stop.is_set():
                        consumer_tag = subscribe()
                        consuming, paused = True, False
                    if not consuming:
                        if stop.is_set():
                            return
                        # Reconnecting redeclares the queue and consumes again.
                        raise ConsumerCancelled(f"RabbitMQ cancelled the consumer of {queue_name(queue)}")
                    while waiting and current is None:
                        current = self._start(connection, channel, *waiting.popleft(), handle, runner)
                # Turning the I/O loop answers heartbeats while a handler works; the handler thread wakes it.
                connection.process_data_events(time_limit=0 if current is None and waiting else 1)
        except AMQPError:
            if current is not None:
                current.ack_sent.set()  # never acked: do not keep the handler's acknowledge() waiting
                if not current.finished.is_set():
                    # Unacked, the message goes back to the queue; one handler at a time even across reconnections.
                    logger.warning("waiting for the running handler before reconnecting")
                    # It is working, not hung: keep the heartbeat (the liveness probe's file) beating.
                    while not current.finished.wait(1.0):
                        on_alive()
            raise

    def _start(self, connection, channel, delivery_tag: int, body: bytes, handle: Handler, runner) -> _Delivery | None:
        """Hand a delivery to the handler thread, or dead-letter it when no consumer could act on it."""
        try:
            message = decode(body)
        except ValueError as exc:
            logger.error("dead-lettering an unusable message (%s): %r", exc, body[:200])
            channel.basic_nack(delivery_tag, requeue=False)
            return None
        delivery = _Delivery(delivery_tag, message)

        def ack_early() -> None:  # on the handler thread, through the handler's acknowledge()
            delivery.ack_requested.set()
            try:
                connection.add_callback_threadsafe(_wake)
            except AMQPError:
                return  # the connection is gone; the broker will redeliver the message
            if not delivery.ack_sent.wait(EARLY_ACK_WAIT_SECONDS):
                logger.warning("the early ack of %s is still pending", message)

        def work() -> None:  # on the handler thread
            try:
                handle(message, ack_early)
            except BaseException as exc:  # noqa: BLE001 - reported on the connection thread, which settles it
                delivery.failure = exc
            finally:
                delivery.finished.set()
            try:
                connection.add_callback_threadsafe(_wake)
            except AMQPError:
                pass  # the connection is gone; the broker requeues the unacked delivery itself

        runner.submit(work)
        return delivery

    @staticmethod
    def _settle(channel: BlockingChannel, delivery: _Delivery) -> None:
        """Ack, dead-letter or requeue a delivery whose handler has finished (on the connection thread)."""
        failure, message = delivery.failure, delivery.message
        if failure is None:
            if not delivery.acked:
                channel.basic_ack(delivery.delivery_tag)
        elif delivery.acked:
            logger.error("handling %s failed after its message was acknowledged", message, exc_info=failure)
        elif isinstance(failure, RejectMessage):
            logger.warning("dead-lettering %s: %s", message, failure)
            channel.basic_nack(delivery.delivery_tag, requeue=False)
        else:
            logger.error("handling %s failed; requeueing it", message, exc_info=failure)
            channel.basic_nack(delivery.delivery_tag, requeue=True)

    # --- administration

    def queue_depth(self, queue: str) -> int:
        connection = self.connect()
        try:
            channel = connection.channel()
            self.declare_queues(channel)  # a queue nobody has used yet holds 0 messages, not an error
            return channel.queue_declare(queue_name(queue), passive=True).method.message_count
        except AMQPError as exc:
            raise BrokerError(UNREACHABLE) from exc
        finally:
            _close_quietly(connection)

    def ping(self) -> None:
        _close_quietly(self.connect())

    def reset(self) -> None:
        # Closes connections of other threads: only for tests and after a fork, when they are idle.
        with self._publishers_lock:
            channels, self._publishers = list(self._publishers.values()), {}
        for channel in channels:
            _close_quietly(channel.connection)

    def delete_queues(self) -> None:
        if not settings.QUEUE_PREFIX:
            # A guard for the tests' cleanup: never delete a deployment's unprefixed queues.
            raise BrokerError("Refusing to delete queues without a QUEUE_PREFIX.")
        connection = self.connect()
        try:
            channel = connection.channel()
            for name in QUEUES:
                channel.queue_delete(queue_name(name))
                channel.queue_delete(dead_letter_queue_name(name))
        except AMQPError as exc:
            raise BrokerError(UNREACHABLE) from exc
        finally:
            _close_quietly(connection)
