"""Crash or stall on purpose at a named point, for the fault-injection tests.

FAILPOINTS (a comma-separated list; empty in every real deployment) names the points:
``converting`` makes the process SIGKILL itself when it reaches that point, so a test can land a
crash in a window too short to hit from outside (e.g. after a commit and before the message is
acknowledged); ``converting=pause:90`` makes it wait 90 s there instead, so a test can stretch
one step past a broker timeout without a multi-hour input; ``writing=stop`` makes it SIGSTOP itself
there (every thread freezes, as in a VM pause), so a test can SIGCONT it after others moved on.
"""

import logging
import os
import signal
import time

from django.conf import settings

logger = logging.getLogger(__name__)


def reached(point: str, job_id) -> None:
    """Log that `point` was reached for this job, and die or wait there if a test asked for it."""
    logger.info("phase=%s job=%s", point, job_id)
    for entry in settings.FAILPOINTS:
        name, _, action = entry.partition("=")
        if name != point:
            continue
        if action == "stop":
            logger.warning("failpoint %s: stopping this process (SIGSTOP)", point)
            os.kill(os.getpid(), signal.SIGSTOP)
        elif action.startswith("pause:"):
            seconds = float(action.removeprefix("pause:"))
            logger.warning("failpoint %s: pausing %.0f s", point, seconds)
            time.sleep(seconds)
        else:
            logger.warning("failpoint %s: killing this process", point)
            os.kill(os.getpid(), signal.SIGKILL)
