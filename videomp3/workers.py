"""The long-running worker roles: a stop flag set by signals, and one consume loop per queue."""

import logging
import signal
import threading
from collections.abc import Callable

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

from videomp3 import broker

logger = logging.getLogger(__name__)


def run_worker(queue: str, handle: Callable[[dict], object], *, stop: threading.Event) -> None:
    """Consume `queue` until `stop` is set; each message goes through `handle(message)`."""
    broker.declare_queues()

    def handle_with_fresh_connections(message: dict) -> None:
        # Each message may run on a new thread: its database connection must not outlive it.
        close_old_connections()
        try:
            handle(message)
        finally:
            connections.close_all()

    broker.consume(queue, handle_with_fresh_connections, stop=stop)


class WorkerCommand(BaseCommand):
    """A management command that consumes one queue; the first SIGTERM/SIGINT stops it gracefully."""

    queue: str

    def handle_message(self, message: dict, stop: threading.Event) -> object:
        raise NotImplementedError

    def handle(self, *args, **options):
        stop = threading.Event()

        def request_stop(signum, frame):
            if stop.is_set():
                logger.warning("second signal: exiting now")
                raise SystemExit(1)
            logger.info("signal %s: finishing the current message, then exiting", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        logger.info("consuming queue %s", self.queue)
        run_worker(self.queue, lambda message: self.handle_message(message, stop), stop=stop)
        logger.info("stopped cleanly")
