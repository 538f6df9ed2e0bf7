"""Keeping a claim alive from a thread while slow work goes on: a converter's lease on its job, a
notifier's hold on an email. The claim is in the database; the work must not outlive it unnoticed."""

import logging
import threading
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)


class RenewedWhileRunning:
    """Calls `renew()` every `every` seconds while the block runs. `renew` returns False once the claim
    is gone (taken over, deleted): renewing stops and `lost` is set. A failing renew (the database
    away for a moment) is logged and tried again, since the claim may still be held when it is back."""

    def __init__(self, renew: Callable[[], bool], *, every: float, name: str):
        self.renew = renew
        self.every = every
        self.name = name
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            while not self._done.wait(self.every):
                try:
                    if not self.renew():
                        self.lost.set()
                        return
                except Exception:  # noqa: BLE001 - the database may come back before the claim runs out
                    logger.warning("could not renew %s; trying again", self.name, exc_info=True)
        finally:
            connections.close_all()  # this thread's own database connection

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        self._thread.join()
