"""The message broker, as every role uses it: publish, consume, and the administration around them.

Messages are JSON `{"v": 1, "job_id": "<uuid>"}` plus optional fields. With AMQP_URL set they go
through RabbitMQ: durable quorum queues that dead-letter to `<name>.dead`, persistent messages,
publisher confirms, publishing only after the job's transaction commits. With AMQP_URL empty an
in-process queue stands in, valid only when every role runs in one process (`make run`).

Settings are read at call time, so tests can switch AMQP_URL and QUEUE_PREFIX with overrides.
The transports live beside this file: rabbitmq.py (the only module that imports pika) and
in_process.py; messages.py holds what both share.
"""

import threading
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.db import transaction

from core.broker.in_process import MemoryTransport
from core.broker.messages import (  # noqa: F401 - the broker's public names
    MP3,
    QUEUES,
    UNREACHABLE,
    VIDEO,
    BrokerError,
    Handler,
    RejectMessage,
    dead_letter_queue_name,
    decode,
    encode,
    queue_name,
)
from core.broker.rabbitmq import RabbitTransport

_transports: dict[str, RabbitTransport | MemoryTransport] = {}
_transports_lock = threading.Lock()


def _transport() -> RabbitTransport | MemoryTransport:
    url = settings.AMQP_URL
    with _transports_lock:
        if url not in _transports:
            _transports[url] = RabbitTransport(url) if url else MemoryTransport()
        return _transports[url]


def declare_queues(channel=None) -> None:
    """Declare the work queues and their dead-letter queues (idempotent; every role does it at start-up)."""
    _transport().declare_queues(channel)


def publish(queue: str, job_id: str, **extra) -> None:
    """Publish now: persistent, confirmed by the broker, refused when unroutable. Raises BrokerError."""
    _transport().publish(queue, encode(job_id, **extra))


def publish_dead_letter(queue: str, job_id: str, *, reason: str, **extra) -> None:
    """Put a message for a person to inspect straight into `<queue>.dead`, with the reason it is there."""
    _transport().publish(f"{queue}.dead", encode(job_id, reason=reason, **extra))


def publish_on_commit(queue: str, job_id: str, **extra) -> None:
    """Publish once the current transaction commits, so a consumer never sees an uncommitted job.

    robust: a broker outage after the commit must not turn a committed job into an error for the
    caller (nor make it undo work, e.g. delete a stored upload); the failure is logged, and the job
    stays `queued` in the database, where recovery re-publishes it.
    """
    transaction.on_commit(partial(publish, queue, job_id, **extra), robust=True)


def consume(
    queue: str,
    handle: Handler,
    *,
    stop: threading.Event,
    prefetch: int = 1,
    on_alive: Callable[[], None] = lambda: None,
) -> None:
    """Feed each message of `queue` to `handle(message)` until `stop` is set, reconnecting as needed.

    Ack after handle(message, acknowledge) returns, or when it calls acknowledge(); requeue if it raises (the delivery
    limit bounds the retries), dead-letter a message no consumer can read or whose handler raises
    RejectMessage. Once `stop` is set it takes no new messages, lets the current one
    finish, and returns. `on_alive` is called at least once a second (for liveness probes).
    """
    _transport().consume(queue, handle, stop=stop, prefetch=prefetch, on_alive=on_alive)


def queue_depth(queue: str) -> int:
    """Messages ready in `queue` (a name such as VIDEO or "video.dead", without the prefix)."""
    return _transport().queue_depth(queue)


def ping() -> None:
    """Raise BrokerError unless the broker accepts a connection."""
    _transport().ping()


def reset() -> None:
    """Close publisher connections and forget in-process messages (tests, forked processes)."""
    with _transports_lock:
        transports = list(_transports.values())
        _transports.clear()
    for transport in transports:
        transport.reset()


def delete_queues() -> None:
    """Delete this QUEUE_PREFIX's four queues on RabbitMQ (tests' cleanup); nothing for the in-process queue."""
    _transport().delete_queues()
