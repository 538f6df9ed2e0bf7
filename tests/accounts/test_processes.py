"""Behaviour that only shows with real processes: refusing to start without production secrets."""

import subprocess
import sys

import pytest

from tests.support.processes import PROJECT_DIR, role_env

# The login throttle shared by two server processes is in tests/security/test_catalog.py.


PRODUCTION_SECRETS = {
    "DEBUG": "0",
    "SECRET_KEY": "test-only-secret-key-0123456789abcdef0123456789",
    "JWT_SIGNING_KEY": "test-only-jwt-key-0123456789abcdef0123456789ab",
    "ALLOWED_HOSTS": "videomp3.example.com",
    # Required with DEBUG off; `check` connects to none of them.
    "MONGODB_URI": "mongodb://127.0.0.1:27017/",
    "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
}


def _start_django(**overrides: str) -> subprocess.CompletedProcess:
    env = role_env()
    for name in ("DEBUG", "SECRET_KEY", "JWT_SIGNING_KEY", "ALLOWED_HOSTS"):
        env.pop(name, None)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("missing", ["SECRET_KEY", "JWT_SIGNING_KEY", "ALLOWED_HOSTS"])
@pytest.mark.django_db
def test_production_refuses_to_start_without_each_secret(missing):
    environment = {name: value for name, value in PRODUCTION_SECRETS.items() if name != missing}
    result = _start_django(**environment)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert missing in last_line


@pytest.mark.django_db
def test_production_refuses_the_development_key_and_weak_keys():
    result = _start_django(**{**PRODUCTION_SECRETS, "SECRET_KEY": "short"})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
    result = _start_django(**{**PRODUCTION_SECRETS, "SECRET_KEY": "s" * 50})
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_production_starts_with_its_secrets_and_reads_secret_files(tmp_path):
    assert _start_django(**PRODUCTION_SECRETS).returncode == 0
    secret_file = tmp_path / "jwt-key"
    secret_file.write_text("file-jwt-key-0123456789abcdefghijklmnop\n")
    environment = {**PRODUCTION_SECRETS, "JWT_SIGNING_KEY_FILE": str(secret_file)}
    del environment["JWT_SIGNING_KEY"]
    result = _start_django(**environment)
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_embedded_defaults_start_with_nothing_set():
    result = _start_django()
    assert result.returncode == 0, result.stderr
