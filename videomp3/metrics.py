"""`/metrics` in the Prometheus text format, computed from the database at each scrape.

Every role runs in its own processes and pods, so no in-memory registry could add their work
up; the job rows can, and they are the source of truth anyway. A scrape costs a few
aggregate queries and, with RabbitMQ, two passive queue declarations. It also asks each dependency
whether it answers (videomp3_dependency_up): /readyz leaves the shared stores out (videomp3.health).

Not public: the scraper sends `Authorization: Bearer <METRICS_TOKEN>`. With no METRICS_TOKEN
set the path answers 404, as if it did not exist.
"""

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core import broker
from uploads import selectors as job_selectors
from videomp3.dependencies import dependencies_up

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds, in seconds, of the conversion time buckets: from a short clip to a long film.
CONVERSION_SECONDS_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)


def _authorized(request) -> bool:
    expected = getattr(settings, "METRICS_TOKEN", "")
    scheme, _, provided = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not provided:
        return False
    return hmac.compare_digest(provided.strip().encode(), expected.encode())


def _format_value(value: float | int) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _family(name: str, kind: str, help_text: str, samples: list[tuple[str, float | int]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{sample_name} {_format_value(value)}" for sample_name, value in samples]
    return lines


def _job_lines() -> list[str]:
    counts = job_selectors.job_counts_by_status()
    lines = _family(
        "videomp3_jobs",
        "gauge",
        "Jobs in each state right now.",
        [(f'videomp3_jobs{{state="{state}"}}', n) for state, n in counts.items()],
    )
    # Counted from the rows that are in a final state now, so deleting or retrying a job lowers
    # them; Prometheus' rate() reads a drop as a counter reset, which is acceptable here.
    lines += _family(
        "videomp3_conversions_total",
        "counter",
        "Conversions that produced an MP3 (jobs now done).",
        [("videomp3_conversions_total", counts["done"])],
    )
    lines += _family(
        "videomp3_conversion_failures_total",
        "counter",
        "Conversions that failed with a sentence for the user (jobs now failed).",
        [("videomp3_conversion_failures_total", counts["failed"])],
    )
    return lines


def _conversion_seconds_lines() -> list[str]:
    totals = job_selectors.job_conversion_seconds(bounds=CONVERSION_SECONDS_BUCKETS)
    total: timedelta | None = totals["total"]
    samples = [
        (f'videomp3_conversion_seconds_bucket{{le="{_format_value(float(bound))}"}}', totals["at_most"][index])
        for index, bound in enumerate(CONVERSION_SECONDS_BUCKETS)
    ]
    samples += [
        ('videomp3_conversion_seconds_bucket{le="+Inf"}', totals["count"]),
        ("videomp3_conversion_seconds_sum", total.total_seconds() if total else 0.0),
        ("videomp3_conversion_seconds_count", totals["count"]),
    ]
    return _family(
        "videomp3_conversion_seconds",
        "histogram",
        "Time from a converter claiming a job to its MP3 being stored, for jobs now done.",
        samples,
    )


def _byte_lines() -> list[str]:
    sums = job_selectors.job_byte_totals()
    return _family(
        "videomp3_uploaded_bytes_total",
        "counter",
        "Bytes of the videos of the jobs that exist now.",
        [("videomp3_uploaded_bytes_total", sums["uploaded"])],
    ) + _family(
        "videomp3_produced_bytes_total",
        "counter",
        "Bytes of the MP3s of the jobs that exist now.",
        [("videomp3_produced_bytes_total", sums["produced"])],
    )


def _dependency_lines(up: dict[str, bool]) -> list[str]:
    return _family(
        "videomp3_dependency_up",
        "gauge",
        "Whether the dependency answered this scrape's check within a few seconds (1) or not (0).",
        [(f'videomp3_dependency_up{{dependency="{name}"}}', int(answered)) for name, answered in up.items()],
    )


def _queue_lines() -> list[str]:
    samples = []
    for queue in broker.QUEUES:
        try:
            samples.append((f'videomp3_queue_messages{{queue="{queue}"}}', broker.queue_depth(queue)))
        except Exception as exc:  # noqa: BLE001 - a broker outage must not take the other metrics down
            logger.warning("metrics: cannot read the depth of queue %s: %s", queue, exc)
            return [f"# videomp3_queue_messages omitted: the broker did not answer ({exc.__class__.__name__})."]
    return _family("videomp3_queue_messages", "gauge", "Messages ready in each work queue.", samples)


@require_safe
@never_cache
def metrics(request):
    if not getattr(settings, "METRICS_TOKEN", ""):
        return JsonResponse({"detail": "Not found."}, status=404)
    if not _authorized(request):
        response = JsonResponse(
            {"detail": "Send the metrics token as 'Authorization: Bearer <METRICS_TOKEN>'."}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    up = dependencies_up()
    lines = _dependency_lines(up)
    if up["database"]:
        lines += _job_lines() + _conversion_seconds_lines() + _byte_lines()
    else:  # the other families come from the job rows: this scrape has none of them
        lines.append("# videomp3_jobs and the conversion families omitted: the SQL database did not answer.")
    if up["broker"]:
        lines += _queue_lines()
    else:
        lines.append("# videomp3_queue_messages omitted: the broker did not answer (BrokerError).")
    return HttpResponse("\n".join(lines) + "\n", content_type=CONTENT_TYPE)
