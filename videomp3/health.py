"""Health endpoints for probes: `/healthz` (the process answers) and `/readyz` (its dependencies do).

Kubernetes probes, and Prometheus scraping pods, call the pod's own address over plain HTTP
with the pod IP as the Host header. `HealthCheckMiddleware` answers `/healthz`, `/readyz` and
`/metrics` before any middleware that validates the Host header or redirects to HTTPS, so they
work with a strict `ALLOWED_HOSTS` and SSL redirect. It must be the first entry of `MIDDLEWARE`.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core import broker, storage
from videomp3.metrics import metrics

logger = logging.getLogger(__name__)

# The readiness probe's timeout is longer than this, so a hung dependency is reported by name
# rather than as a probe timeout. MongoDB's own server selection gives up after 5 s.
CHECK_TIMEOUT_SECONDS = 6.0

# What an operator reads when a check fails: the dependency, and what to look at.
FAILURE_SENTENCES = {
    "database": "The SQL database is unreachable; check DATABASE_URL and that the database server is up.",
    "mongodb": "MongoDB is unreachable; check MONGODB_URI and that the MongoDB server is up.",
    "broker": "RabbitMQ is unreachable; check AMQP_URL and that the RabbitMQ server is up.",
}


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@require_safe
@never_cache
def healthz(request):
    """The process is alive and serving requests; checks no dependency (a liveness probe must not)."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request):
    """200 when the database, MongoDB and RabbitMQ all answer; else 503 naming the ones that do not."""
    checks: dict[str, str] = {}
    # MongoDB and RabbitMQ are asked from threads, at the same time as the database, so a hung
    # dependency costs at most CHECK_TIMEOUT_SECONDS. The database stays on this thread: its
    # connection belongs to the thread that opened it.
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="readyz")
    pending = {"mongodb": executor.submit(storage.ping), "broker": executor.submit(broker.ping)}
    try:
        try:
            _check_database()
            checks["database"] = "ok"
        except DatabaseError as exc:
            logger.warning("readiness: database check failed: %s", exc)
            checks["database"] = "failed"
        for name, future in pending.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                checks[name] = "ok"
            except FutureTimeout:
                logger.warning("readiness: %s did not answer within %.0f s", name, CHECK_TIMEOUT_SECONDS)
                checks[name] = "timeout"
            except (storage.StorageError, broker.BrokerError) as exc:
                logger.warning("readiness: %s check failed: %s", name, exc)
                checks[name] = "failed"
    finally:
        executor.shutdown(wait=False, cancel_futures=True)

    failing = [name for name, status in checks.items() if status != "ok"]
    if not failing:
        return JsonResponse({"status": "ok", "checks": checks})
    detail = " ".join(FAILURE_SENTENCES[name] for name in failing)
    return JsonResponse({"status": "unavailable", "checks": checks, "failing": failing, "detail": detail}, status=503)


# Paths answered before Host validation and SSL redirect. /metrics is guarded by its own token.
DIRECT_VIEWS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class HealthCheckMiddleware:
    """Answers the probe and metrics paths before Host validation and SSL redirect; put it first in MIDDLEWARE.

    The kubelet and a pod-discovering Prometheus call the pod's own address: their Host header
    is an IP that ALLOWED_HOSTS rightly does not list, and they speak plain HTTP. Nothing these
    views return depends on the host or the scheme, so skipping those checks for them is safe.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = DIRECT_VIEWS.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
