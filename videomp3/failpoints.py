"""Crash on purpose at a named point, for the fault-injection tests.

FAILPOINTS (a comma-separated list of point names; empty in every real deployment) makes the
process SIGKILL itself when it reaches one of them, so a test can land a crash in a window
too short to hit from outside (e.g. after a commit and before the message is acknowledged).
"""

import logging
import os
import signal

from django.conf import settings

logger = logging.getLogger(__name__)


def reached(point: str, job_id) -> None:
    """Log that `point` was reached for this job, and die there if a test asked for it."""
    logger.info("phase=%s job=%s", point, job_id)
    if point in settings.FAILPOINTS:
        logger.warning("failpoint %s: killing this process", point)
        os.kill(os.getpid(), signal.SIGKILL)
