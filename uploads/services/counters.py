"""The counters behind /metrics' `_total` series: added to in the transaction of the change they count.

Job rows come and go (deleted by their owner, expired by retention), so totals computed from them would
drop; a counter row only grows. Counted: real conversions (a converter stored an MP3; dedup reuse is not a
conversion), failures, the bytes of each upload received, the bytes of each MP3 produced, and each
conversion's claim-to-stored time in the histogram's cumulative buckets.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import F

from uploads.models import MetricCounter

CONVERSIONS = "conversions"
FAILURES = "conversion_failures"
UPLOADED_BYTES = "uploaded_bytes"
PRODUCED_BYTES = "produced_bytes"
CONVERSION_MILLISECONDS = "conversion_milliseconds"  # the histogram's sum, in whole milliseconds
TIMED_CONVERSIONS = "timed_conversions"  # the histogram's count: conversions with a claim time
# Upper bounds, in seconds, of the conversion time buckets: from a short clip to a long film.
CONVERSION_SECONDS_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)


def bucket_name(bound: float) -> str:
    return f"conversion_seconds_le_{bound}"


def counters_add(amounts: dict[str, int]) -> None:
    """Add to the named counters. Call it inside the transaction that makes the change it counts, so the
    count and the change commit (or roll back) together."""
    assert transaction.get_connection().in_atomic_block, "a counter moves with the change it counts"
    for name, amount in amounts.items():
        if not amount:
            continue
        if not MetricCounter.objects.filter(name=name).update(value=F("value") + amount):
            # A counter first used now (the migration seeds the known ones): created once, whoever races.
            MetricCounter.objects.bulk_create([MetricCounter(name=name, value=0)], ignore_conflicts=True)
            MetricCounter.objects.filter(name=name).update(value=F("value") + amount)


def conversion_counted(*, mp3_size: int, started_at: datetime | None, finished_at: datetime) -> None:
    """A converter stored an MP3: one conversion, its bytes, and its time in the histogram."""
    amounts = {CONVERSIONS: 1, PRODUCED_BYTES: mp3_size}
    if started_at is not None:
        seconds = max(0.0, (finished_at - started_at).total_seconds())
        amounts[CONVERSION_MILLISECONDS] = round(seconds * 1000)
        for bound in CONVERSION_SECONDS_BUCKETS:
            if seconds <= bound:
                amounts[bucket_name(bound)] = 1
        amounts[TIMED_CONVERSIONS] = 1
    counters_add(amounts)
