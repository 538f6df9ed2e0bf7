"""When to try again after a failure: the one retry schedule of every sender (the notifier's emails,
a converter's unreachable store, and later webhooks).

Exponential, capped, with jitter: attempt N waits base × 2^(N-1) seconds at most `cap`, less a
random part of up to a quarter, so senders that failed together (a mail server down for an hour) do
not all come back in the same second.
"""

import random


def retry_delay(attempt: int, *, base: float, cap: float = 3600.0) -> float:
    """Seconds to wait before attempt `attempt` + 1, after `attempt` failures (1, 2, ...)."""
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 32))
    return ceiling * random.uniform(0.75, 1.0)  # noqa: S311 - spreading retries, not a secret
