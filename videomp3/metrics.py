"""`/metrics` in the Prometheus text format, computed from the database at each scrape.

Every role runs in its own processes and pods, so no in-memory registry could add their work
up; the database can. The gauges count the job rows now; the `_total` series and the histogram read
counters that each change adds to in its own transaction (uploads.services.counters), so they never drop
when jobs are deleted or expire. Every pod answers the same cluster-wide figures: scrape one, or aggregate
with max(), never sum(). A scrape costs a few queries and, with RabbitMQ, two passive queue declarations. It also asks each dependency
whether it answers (videomp3_dependency_up): /readyz leaves the shared stores out (videomp3.health).

Not public: the scraper sends `Authorization: Bearer <METRICS_TOKEN>`. With no METRICS_TOKEN
set the path answers 404, as if it did not exist.
"""

import hmac
import logging

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from core import broker
from uploads import selectors as job_selectors
from uploads.services import counters
from videomp3.dependencies import dependencies_up

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
    return lines


def _counter_lines() -> list[str]:
    """The `_total` series and the histogram: cluster-wide counters that only grow (every pod reads the
    same rows, so a query across pods takes max(), not sum())."""
    totals = job_selectors.metric_counters()
    lines = []

    def value(name: str) -> int:
        return totals.get(name, 0)

    for name, counter, help_text in (
        (
            "videomp3_conversions_total",
            counters.CONVERSIONS,
            "Conversions that stored an MP3 (dedup reuse is not one).",
        ),
        ("videomp3_conversion_failures_total", counters.FAILURES, "Jobs that failed with a sentence for the user."),
        ("videomp3_uploaded_bytes_total", counters.UPLOADED_BYTES, "Bytes of every upload received."),
        ("videomp3_produced_bytes_total", counters.PRODUCED_BYTES, "Bytes of every MP3 a converter stored."),
    ):
        lines += _family(name, "counter", help_text, [(name, value(counter))])
    samples = [
        (
            f'videomp3_conversion_seconds_bucket{{le="{_format_value(float(bound))}"}}',
            value(counters.bucket_name(bound)),
        )
        for bound in counters.CONVERSION_SECONDS_BUCKETS
    ]
    samples += [
        ('videomp3_conversion_seconds_bucket{le="+Inf"}', value(counters.TIMED_CONVERSIONS)),
        ("videomp3_conversion_seconds_sum", value(counters.CONVERSION_MILLISECONDS) / 1000),
        ("videomp3_conversion_seconds_count", value(counters.TIMED_CONVERSIONS)),
    ]
    return lines + _family(
        "videomp3_conversion_seconds",
        "histogram",
        "Time from a converter claiming a job to its MP3 being stored.",
        samples,
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
        lines += _job_lines() + _counter_lines()
    else:  # the other families come from the job rows: this scrape has none of them
        lines.append("# videomp3_jobs and the conversion families omitted: the SQL database did not answer.")
    if up["broker"]:
        lines += _queue_lines()
    else:
        lines.append("# videomp3_queue_messages omitted: the broker did not answer (BrokerError).")
    return HttpResponse("\n".join(lines) + "\n", content_type=CONTENT_TYPE)
