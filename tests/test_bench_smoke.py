"""Every bench script runs end to end on tiny inputs (BENCH_SMOKE=1), so `make bench` cannot rot.

Nothing is timed or compared here: the figures come from `make bench` on a quiet machine.
"""

import os
import subprocess
import sys

import pytest

from bench.__main__ import SCRIPTS as BENCH_SCRIPTS
from tests.support.processes import PROJECT_DIR
from tests.support.services import amqp_url, rabbitmq_reachable, service_missing

SCRIPTS = [name for name, _run in BENCH_SCRIPTS]


@pytest.fixture(scope="module")
def services_for_bench():
    if not os.environ.get("DATABASE_URL", "").startswith("mysql"):
        service_missing("the bench scripts create their own MariaDB database: set DATABASE_URL=mysql://...")
    reason = rabbitmq_reachable(amqp_url())
    if reason:
        service_missing(reason)


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs(services_for_bench, tmp_path, script):
    env = {**os.environ, "BENCH_SMOKE": "1", "BENCH_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{script}"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "target" in result.stdout  # the script printed its verdict line
