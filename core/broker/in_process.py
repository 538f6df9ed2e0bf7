"""The in-process transport: stands in for RabbitMQ when AMQP_URL is empty, valid only when every role
runs in one process (`make run`). It keeps RabbitMQ's delivery limit and dead-lettering."""

import logging
import queue as queue_module
import threading
from functools import partial

from core.broker.messages import (
    DELIVERY_LIMIT,
    QUEUES,
    Handler,
    RejectMessage,
    dead_letter_queue_name,
    decode,
    queue_name,
)

logger = logging.getLogger(__name__)


class MemoryTransport:
    """In-process queues for the embedded mode: the same bodies, delivery limit and dead letters.

    Handlers run on the consuming thread: there is no connection to keep alive meanwhile.
    """

    def __init__(self):
        self._queues: dict[str, queue_module.Queue[tuple[bytes, int]]] = {}
        self._lock = threading.Lock()

    def _queue(self, full_name: str) -> queue_module.Queue[tuple[bytes, int]]:
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
                message = decode(body)
            except ValueError as exc:
                logger.error("dead-lettering an unusable message (%s): %r", exc, body[:200])
                self._queue(dead_letter_queue_name(queue)).put((body, deliveries))
                continue
            acked: list[bool] = []
            try:
                handle(message, partial(acked.append, True))
            except RejectMessage as exc:
                logger.warning("dead-lettering %s: %s", message, exc)
                if not acked:  # an acknowledged message is gone already
                    self._queue(dead_letter_queue_name(queue)).put((body, deliveries))
            except Exception:
                if acked:
                    logger.exception("handling %s failed after its message was acknowledged", message)
                    continue
                logger.exception("handling %s failed; requeueing it", message)
                # Like RabbitMQ's x-delivery-limit: a message that always fails ends in `<name>.dead`
                # after the first delivery and DELIVERY_LIMIT redeliveries.
                target = queue_name(queue) if deliveries < DELIVERY_LIMIT else dead_letter_queue_name(queue)
                self._queue(target).put((body, deliveries + 1))

    def queue_depth(self, queue: str) -> int:
        return self._queue(queue_name(queue)).qsize()

    def ping(self) -> None:
        return None

    def reset(self) -> None:
        with self._lock:
            self._queues.clear()

    def delete_queues(self) -> None:
        return None  # nothing outlives the process
