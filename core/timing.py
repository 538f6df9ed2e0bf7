"""Seconds spent in each phase of one upload or one conversion, logged as one line per job.

`make bench` reads these lines for its per-phase breakdown; operators read them to see where a slow
job spent its time. Measuring costs two clock reads per phase.
"""

import time
from contextlib import contextmanager


class PhaseTimer:
    def __init__(self, **already: float):
        self.seconds: dict[str, float] = dict(already)

    @contextmanager
    def phase(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def summary(self) -> str:
        return " ".join(f"{name}={seconds:.3f}" for name, seconds in self.seconds.items())
