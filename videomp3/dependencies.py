"""Whether each dependency answers right now: the SQL database for /readyz, all three for /metrics."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import DatabaseError, connection

from core import broker, storage

logger = logging.getLogger(__name__)

# A hung dependency costs a scrape at most this long (Prometheus' default scrape timeout is 10 s).
# MongoDB's own server selection gives up after 5 s.
CHECK_TIMEOUT_SECONDS = 6.0


def check_database() -> None:
    """Raises DatabaseError unless the SQL database answers a query on this thread's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def dependencies_up() -> dict[str, bool]:
    """{"database", "mongodb", "broker"} → whether each answered within CHECK_TIMEOUT_SECONDS.

    MongoDB and RabbitMQ are asked from threads, at the same time as the database, so a hung one
    costs at most CHECK_TIMEOUT_SECONDS. The database stays on this thread: its connection belongs
    to the thread that opened it.
    """
    up: dict[str, bool] = {}
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dependency-check")
    pending = {"mongodb": executor.submit(storage.ping), "broker": executor.submit(broker.ping)}
    try:
        try:
            check_database()
            up["database"] = True
        except DatabaseError as exc:
            logger.warning("dependency check: the SQL database failed: %s", exc)
            up["database"] = False
        for name, future in pending.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                up[name] = True
            except FutureTimeout:
                logger.warning("dependency check: %s did not answer within %.0f s", name, CHECK_TIMEOUT_SECONDS)
                up[name] = False
            except (storage.StorageError, broker.BrokerError) as exc:
                logger.warning("dependency check: %s failed: %s", name, exc)
                up[name] = False
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return up
