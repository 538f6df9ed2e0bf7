"""The test harness itself: an absent service skips locally and fails under REQUIRE_SERVICES=1."""

import os
import subprocess
import sys

import pytest

from tests.support.processes import PROJECT_DIR

PROBE = """
def test_needs_rabbitmq(rabbitmq):
    pass
"""


def _run_probe(tmp_path, require: str) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {
        **os.environ,
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F",  # nothing listens on port 1
        "REQUIRE_SERVICES": require,
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_DIR / "pyproject.toml"),
            "--rootdir",
            str(PROJECT_DIR),
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-rs",
            str(probe),
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(("require", "outcome"), [("0", "1 skipped"), ("1", "1 error")])
def test_absent_service_skips_or_fails(tmp_path, require, outcome):
    result = _run_probe(tmp_path, require)
    assert outcome in result.stdout, result.stdout + result.stderr
    assert "RabbitMQ at amqp://guest:guest@127.0.0.1:1/%2F is not reachable" in result.stdout
    assert (result.returncode == 0) == (require == "0")
