"""Temp directories a role works in (an upload's extraction, a conversion), and removing the ones a
killed process left behind.

Each directory holds a lock file that its process keeps locked (flock) while it works there; the
kernel drops the lock when the process dies, however it dies. A directory whose lock can be taken is
therefore stale, even when several roles share one temp dir (tests, compose, `make run`).
"""

import fcntl
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

# Specific enough that no other directory of ours matches: a test's private RabbitMQ node in
# /tmp/videomp3-rabbitmq-… once went as "stale" under the older prefix "videomp3-".
PREFIX = "videomp3-work-"
_LOCK_NAME = ".lock"
# A directory with no lock file yet may be one a process is creating this instant: left alone this long.
_UNLOCKED_GRACE_SECONDS = 60


@contextmanager
def locked_temp_dir(kind: str, *, parent: str | None):
    """A new temp directory `videomp3-work-<kind>-…` under parent, locked for as long as the block runs."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-", dir=parent))
    lock = open(path / _LOCK_NAME, "w")  # noqa: SIM115 - held open for the block's whole life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        lock.close()


def remove_stale(parent: str | None) -> int:
    """Remove the directories under parent that no live process holds; how many went."""
    root = Path(parent or tempfile.gettempdir())
    removed = 0
    for path in root.glob(f"{PREFIX}*"):
        if path.is_dir() and _stale(path):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    if removed:
        logger.info(
            "removed %d temp director%s that killed processes left in %s", removed, "y" if removed == 1 else "ies", root
        )
    return removed


def _stale(path: Path) -> bool:
    try:
        lock = os.open(path / _LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        try:
            return time.time() - path.stat().st_mtime > _UNLOCKED_GRACE_SECONDS
        except FileNotFoundError:
            return False  # gone meanwhile
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its process is alive and working there
    finally:
        os.close(lock)  # also releases the lock just taken
    return True
