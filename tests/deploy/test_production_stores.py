"""With DEBUG off each store URL is required, by name, and may come from a mounted file (NAME_FILE)."""

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import PROJECT_DIR

STORE_URLS = {
    "DATABASE_URL": "mysql://videomp3:db-password@127.0.0.1:3306/videomp3",
    "MONGODB_URI": "mongodb://videomp3:mongo-password@127.0.0.1:27017/",
    "AMQP_URL": "amqp://videomp3:amqp-password@127.0.0.1:5672/%2F",
}
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "test-only-secret-key-0123456789abcdef0123456789",
    "JWT_SIGNING_KEY": "test-only-jwt-key-0123456789abcdef0123456789ab",
    "ALLOWED_HOSTS": "videomp3.example.com",
}
PRINT_STORES = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps({name: getattr(settings, name) for name in ('DATABASE_URL', 'MONGODB_URI', 'AMQP_URL')}))"
)


def _run(args: list[str], tmp_path, **variables: str) -> subprocess.CompletedProcess:
    """A fresh process with none of the test run's own store or production variables, plus `variables`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DATABASE_", "MONGODB_", "AMQP_", "DJANGO_")) and name not in PRODUCTION
    }
    env = {**inherited, "DJANGO_SETTINGS_MODULE": "videomp3.settings", "VAR_DIR": str(tmp_path), **variables}
    return subprocess.run(args, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("missing", list(STORE_URLS))
def test_production_refuses_to_start_without_each_store_url_and_names_it(missing, tmp_path):
    present = {name: url for name, url in STORE_URLS.items() if name != missing}
    result = _run([sys.executable, "manage.py", "check"], tmp_path, **PRODUCTION, **present)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"{missing} (or {missing}_FILE" in last_line and "DEBUG is off" in last_line, last_line
    assert not (tmp_path / "videomp3.sqlite3").exists(), "no fallback SQLite file may be created"


def test_production_reads_every_store_url_from_a_file(tmp_path):
    files = {}
    for name, url in STORE_URLS.items():
        path = tmp_path / name.lower()
        path.write_text(url + "\n")  # as `kubectl create secret --from-file` keeps a trailing newline
        files[f"{name}_FILE"] = str(path)
    assert _run([sys.executable, "manage.py", "check"], tmp_path, **PRODUCTION, **files).returncode == 0
    result = _run([sys.executable, "-c", PRINT_STORES], tmp_path, **PRODUCTION, **files)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == STORE_URLS


def test_an_unreadable_store_url_file_is_named(tmp_path):
    result = _run(
        [sys.executable, "manage.py", "check"],
        tmp_path,
        **PRODUCTION,
        **{**STORE_URLS, "AMQP_URL": ""},
        AMQP_URL_FILE=str(tmp_path / "absent"),
    )
    assert result.returncode != 0 and "AMQP_URL_FILE points at" in result.stderr


def test_development_keeps_the_embedded_defaults(tmp_path):
    """`make run`: DEBUG on and no store URL still starts (SQLite under VAR_DIR, in-process queue)."""
    result = _run([sys.executable, "-c", PRINT_STORES], tmp_path)
    assert result.returncode == 0, result.stderr
    stores = json.loads(result.stdout.strip().splitlines()[-1])
    assert stores == {"DATABASE_URL": f"sqlite:///{tmp_path / 'videomp3.sqlite3'}", "MONGODB_URI": "", "AMQP_URL": ""}
