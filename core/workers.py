"""The long-running worker roles: signals, a heartbeat file, housekeeping, and one consume loop per queue."""

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

from core import broker, workdirs

logger = logging.getLogger(__name__)


class Heartbeat:
    """Touches WORKER_HEARTBEAT_FILE from the consume loop, so a liveness probe can tell a hung worker."""

    def __init__(self, path: str, every: float = 5.0):
        self.path = Path(path) if path else None
        self.every = every
        self._last = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if self.path is None or now - self._last < self.every:
            return
        self._last = now
        self.path.touch()


# What a job handler gets: the job id from the message, and on_claimed() to call once its claim commits.
JobHandler = Callable[[str, Callable[[], None]], object]


def run_worker(queue: str, handle_job: JobHandler, *, stop: threading.Event) -> None:
    """Consume `queue` until `stop` is set; each message's job goes through `handle_job(job_id, on_claimed)`.

    This loop owns the messages, so handlers know nothing of them. A message is acknowledged when the
    handler calls on_claimed() (right after its claim commits: from then on the database drives
    recovery, so a long conversion is not bound by the broker's consumer timeout), else when it
    returns. One it raises on is requeued (the delivery limit bounds the retries); one whose job can
    never exist (ObjectDoesNotExist: no such job, no job id) is dead-lettered at once.
    The queues are declared on every (re)connection, so a broker that is down at start-up is waited for.
    """

    def handle_message(message: dict, acknowledge: Callable[[], None]) -> None:
        # Each message may run on a new thread: its database connection must not outlive it.
        close_old_connections()
        try:
            handle_job(message["job_id"], acknowledge)
        except ObjectDoesNotExist as exc:
            raise broker.RejectMessage(str(exc)) from exc
        finally:
            connections.close_all()

    broker.consume(queue, handle_message, stop=stop, on_alive=Heartbeat(settings.WORKER_HEARTBEAT_FILE))


def run_periodically(task: Callable[[], object], *, every: float, stop: threading.Event, name: str) -> threading.Thread:
    """Run `task` every `every` seconds in a thread until `stop`; a failing run is logged and retried next time."""

    def loop() -> None:
        while not stop.wait(every):
            try:
                task()
            except Exception:  # noqa: BLE001 - housekeeping must never kill the worker
                logger.warning("%s failed; will try again in %.0f s", name, every, exc_info=True)
            finally:
                connections.close_all()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


class WorkerCommand(BaseCommand):
    """A management command that consumes one queue.

    The first SIGTERM/SIGINT stops taking messages and lets the current one finish for
    SHUTDOWN_GRACE_SECONDS, after which `hand_back` is set so it gives its work back;
    a second signal exits at once.
    """

    queue: str

    def handle_job(self, job_id: str, *, on_claimed: Callable[[], None], hand_back: threading.Event) -> object:
        """Do the job's work; call on_claimed() once it is claimed. Raise ObjectDoesNotExist for no such job."""
        raise NotImplementedError

    def housekeeping(self) -> None:
        """Periodic work beside the consume loop (none by default)."""

    def start_companions(self, stop: threading.Event) -> None:
        """Start threads that work beside the consume loop until `stop` is set (none by default)."""

    def handle(self, *args, **options):
        stop = threading.Event()
        hand_back = threading.Event()

        def request_stop(signum, frame):
            if stop.is_set():
                logger.warning("second signal: exiting now")
                raise SystemExit(1)
            grace = settings.SHUTDOWN_GRACE_SECONDS
            logger.info(
                "%s: finishing the current message (at most %d s), then exiting", signal.Signals(signum).name, grace
            )
            stop.set()
            timer = threading.Timer(grace, hand_back.set)
            timer.daemon = True
            timer.start()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        # What a killed worker left (a partial download, an MP3 half written) goes now.
        workdirs.remove_stale(settings.CONVERSION_TEMP_DIR)
        if type(self).housekeeping is not WorkerCommand.housekeeping:
            run_periodically(self.housekeeping, every=settings.SWEEP_INTERVAL_SECONDS, stop=stop, name="housekeeping")
        self.start_companions(stop)
        logger.info("consuming queue %s", self.queue)
        run_worker(
            self.queue,
            lambda job_id, on_claimed: self.handle_job(job_id, on_claimed=on_claimed, hand_back=hand_back),
            stop=stop,
        )
        logger.info("stopped cleanly")
