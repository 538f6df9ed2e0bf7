"""Behaviour that only shows with real processes: shared throttling, and refusing to start."""

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support.processes import PROJECT_DIR, role_env, web_server


def _post_json(url: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


@pytest.mark.django_db(transaction=True)
def test_login_throttle_is_shared_by_two_server_processes(tmp_path):
    user_create(email="target@example.com")
    with web_server(tmp_path / "web1.log") as first, web_server(tmp_path / "web2.log") as second:
        for attempt in range(10):
            server = (first, second)[attempt % 2]
            status, _, _ = _post_json(
                f"{server}/api/auth/token/", {"email": "target@example.com", "password": f"guess {attempt}"}
            )
            assert status == 401
        status, headers, body = _post_json(
            f"{second}/api/auth/token/", {"email": "target@example.com", "password": "guess"}
        )
        assert status == 429
        assert int(headers["Retry-After"]) > 0
        assert "Try again" in body["detail"]
        basic = base64.b64encode(f"target@example.com:{DEFAULT_PASSWORD}".encode()).decode()
        request = urllib.request.Request(f"{first}/login", method="POST", headers={"Authorization": f"Basic {basic}"})
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=30)
        assert error.value.code == 429


PRODUCTION_SECRETS = {
    "DEBUG": "0",
    "SECRET_KEY": "s" * 50,
    "JWT_SIGNING_KEY": "j" * 50,
    "ALLOWED_HOSTS": "videomp3.example.com",
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


@pytest.mark.django_db
def test_production_starts_with_its_secrets_and_reads_secret_files(tmp_path):
    assert _start_django(**PRODUCTION_SECRETS).returncode == 0
    secret_file = tmp_path / "jwt-key"
    secret_file.write_text("k" * 40 + "\n")
    environment = {**PRODUCTION_SECRETS, "JWT_SIGNING_KEY_FILE": str(secret_file)}
    del environment["JWT_SIGNING_KEY"]
    result = _start_django(**environment)
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_embedded_defaults_start_with_nothing_set():
    result = _start_django()
    assert result.returncode == 0, result.stderr
