"""Start the project's own roles as real processes against the test database."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from tests.support.services import free_port, wait_for_port

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """DATABASE_URL of the database this test run uses (pytest-django's test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return f"mysql://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"


def role_env(**overrides: str) -> dict[str, str]:
    """Environment for a role process: the test database, plus the given overrides."""
    env = dict(os.environ)
    env.update(
        {"DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "videomp3.settings", "PYTHONUNBUFFERED": "1"}
    )
    env.update(overrides)
    return env


@contextlib.contextmanager
def web_server(log_path: Path, *, threads: int = 4, production_config: bool = False, **env_overrides: str):
    """The web role under gunicorn, as production runs it; yields its base URL.

    production_config: with docker/gunicorn.conf.py's hooks and logging too (one worker still,
    `threads` threads, a free port)."""
    port = free_port()
    config = ["--config", str(PROJECT_DIR / "docker" / "gunicorn.conf.py")] if production_config else []
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                *config,
                "videomp3.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                str(threads),
                "--timeout",
                "120",
            ],
            cwd=PROJECT_DIR,
            # GUNICORN_THREADS as the image sets it beside --threads: the upload cap's default follows it.
            env=role_env(GUNICORN_THREADS=str(threads), **env_overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port(port, 30):
            raise RuntimeError(f"gunicorn did not listen within 30 s; see {log_path}:\n{log_path.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def gunicorn_worker_pid(base_url: str) -> int:
    """The pid of the one gunicorn worker serving base_url (web_server starts one): the child of the
    gunicorn process that binds its address."""
    bind = base_url.removeprefix("http://").encode()
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if any(b"gunicorn" in part for part in cmdline) and bind in cmdline:
            parents[int(entry.name)] = int(
                next(line for line in status.splitlines() if line.startswith("PPid:")).split()[1]
            )
    (worker,) = [pid for pid, parent in parents.items() if parent in parents]
    return worker


def stop_process(process: subprocess.Popen, timeout: float = 20) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def manage_command(args: list[str], log_path: Path, **env_overrides: str) -> subprocess.Popen:
    """A `manage.py` role (run_converter, run_notifier, …) as its own process."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_DIR,
            env=role_env(**env_overrides),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
