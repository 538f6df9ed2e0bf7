"""Health endpoints for probes: `/healthz` (the process answers) and `/readyz` (this pod can serve).

Kubernetes probes, and Prometheus scraping pods, call the pod's own address over plain HTTP
with the pod IP as the Host header. `HealthCheckMiddleware` answers `/healthz`, `/readyz` and
`/metrics` before any middleware that validates the Host header or redirects to HTTPS, so they
work with a strict `ALLOWED_HOSTS` and SSL redirect. It must be the first entry of `MIDDLEWARE`.

The web pod's liveness probe is not `/healthz` but each gunicorn worker's heartbeat
(`docker/entrypoint.py healthcheck web`): a request would queue behind uploads holding every thread.
"""

import logging

from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from videomp3.dependencies import check_database
from videomp3.metrics import metrics

logger = logging.getLogger(__name__)

DATABASE_DOWN = "The SQL database is unreachable; check DATABASE_URL and that the database server is up."


@require_safe
@never_cache
def healthz(request):
    """The process is alive and serving requests; checks no dependency (a liveness probe must not)."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request):
    """200 when this pod can serve: it answers, and the SQL database answers it; else 503 with a sentence.

    Readiness is about this pod, so it checks only what every request needs: the SQL database holds
    the sessions, the users and the jobs, and a pod that cannot reach it (a wrong DATABASE_URL in a
    new release, a network fault of its own) must not get traffic. MongoDB and RabbitMQ are shared
    by every pod: checking them here would take every web pod out of the Service at once, and the
    ingress would answer 503 to everything, when uploads are still accepted while the broker is down
    (their messages wait in the outbox) and pages still work while MongoDB is. Their health is a
    gauge in /metrics (videomp3_dependency_up) for alerts, not a reason to stop serving.
    """
    try:
        check_database()
    except DatabaseError as exc:
        logger.warning("readiness: database check failed: %s", exc)
        return JsonResponse(
            {
                "status": "unavailable",
                "checks": {"database": "failed"},
                "failing": ["database"],
                "detail": DATABASE_DOWN,
            },
            status=503,
        )
    return JsonResponse({"status": "ok", "checks": {"database": "ok"}})


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
