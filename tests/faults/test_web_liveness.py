"""The web role's liveness check answers while uploads hold every thread, and fails when the worker hangs."""

import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import user_create
from tests.support.processes import PROJECT_DIR, wait_until, web_server
from tests.support.slow_uploads import held_upload

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 2
MAX_AGE_SECONDS = "3"


def _liveness(heartbeats) -> subprocess.CompletedProcess:
    """The pod's livenessProbe command, as the kubelet runs it."""
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "docker" / "entrypoint.py"), "healthcheck", "web"],
        env={**os.environ, "WEB_HEARTBEAT_DIR": str(heartbeats), "WEB_HEARTBEAT_MAX_AGE_SECONDS": MAX_AGE_SECONDS},
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_liveness_ignores_busy_threads_and_catches_a_hung_worker(tmp_path, mongodb, settings):
    heartbeats = tmp_path / "heartbeats"
    token = str(AccessToken.for_user(user_create()))
    with web_server(
        tmp_path / "web.log",
        threads=THREADS,
        production_config=True,
        WEB_HEARTBEAT_DIR=str(heartbeats),
        MAX_CONCURRENT_UPLOADS=str(THREADS),
        MONGODB_URI=settings.MONGODB_URI,
        MONGODB_DB=settings.MONGODB_DB,
        FILE_UPLOAD_TEMP_DIR=str(tmp_path),
    ) as url:
        assert wait_until(lambda: list(heartbeats.glob("worker-*")), timeout=30)
        (beat,) = heartbeats.glob("worker-*")
        worker_pid = int(beat.name.removeprefix("worker-"))
        with held_upload(url, token), held_upload(url, token):
            # Every thread is receiving a stalled upload: an HTTP probe now waits in the queue ...
            with pytest.raises(OSError):
                urllib.request.urlopen(url + "/healthz", timeout=3)
            # ... while the heartbeat check answers, and says the worker is alive.
            result = _liveness(heartbeats)
            assert result.returncode == 0, result.stderr
            os.kill(worker_pid, signal.SIGSTOP)
            try:
                assert wait_until(lambda: _liveness(heartbeats).returncode == 1, timeout=30)
                assert "videomp3 web is not alive" in _liveness(heartbeats).stderr
            finally:
                os.kill(worker_pid, signal.SIGCONT)
            assert wait_until(lambda: _liveness(heartbeats).returncode == 0, timeout=30)
