"""Production settings: `check --deploy` is clean with the README's production variables, HTTPS is
enforced behind a proxy while the probes stay reachable over plain HTTP, and every page carries the
security headers (Content-Security-Policy with frame-ancestors, Referrer-Policy, nosniff, X-Frame-Options)."""

import http.client
import re
import secrets
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.test import Client

from tests.factories import user_create
from tests.support.processes import PROJECT_DIR, role_env, web_server
from videomp3.api_docs import swagger_ui_policy

README = PROJECT_DIR / "README.md"


def documented_production_variables() -> dict[str, str]:
    """The variables of the README's "Production settings" block, with fresh random secrets."""
    text = README.read_text()
    block = re.search(r"<!-- production-env -->\n```sh\n(.*?)```", text, re.S)
    assert block, "the README's Security section has no production-env block"
    variables = {}
    for line in block.group(1).splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name and not line.startswith("#"):
            variables[name] = value
    for name in ("SECRET_KEY", "JWT_SIGNING_KEY"):
        variables[name] = secrets.token_urlsafe(50)
    # Required with DEBUG off (each names the operator's own server); these tests reach no store but SQL.
    variables.setdefault("MONGODB_URI", "mongodb://127.0.0.1:27017/")
    variables.setdefault("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    return variables


def _get(base_url: str, path: str, headers: dict | None = None):
    """One GET; a redirect is returned, never followed."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _production_env(**overrides: str) -> dict[str, str]:
    env = role_env()
    for name in list(env):
        if name.startswith(("SECURE_", "TRUST_")) or name in (
            "DEBUG",
            "SECRET_KEY",
            "JWT_SIGNING_KEY",
            "ALLOWED_HOSTS",
        ):
            env.pop(name)
    env.update(documented_production_variables())
    env.update(overrides)
    return env


@pytest.mark.django_db
def test_check_deploy_has_no_warnings_with_the_documented_production_variables():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_check_deploy_warns_without_them():
    """The test above can fail: without the HTTPS variables Django's own checks complain."""
    env = _production_env()
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        env.pop(name)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout and "security.W008" in result.stderr + result.stdout


@pytest.mark.django_db(transaction=True)
def test_https_is_enforced_behind_the_proxy_while_probes_answer_over_plain_http(tmp_path):
    """gunicorn with the production variables: plain HTTP is redirected, the proxy's X-Forwarded-Proto
    is believed, HSTS is sent over HTTPS, and /healthz answers over plain HTTP (before the redirect)."""
    production = {**documented_production_variables(), "ALLOWED_HOSTS": "127.0.0.1"}
    with web_server(tmp_path / "web.log", **production) as base_url:
        status, _, body = _get(base_url, "/healthz")
        assert (status, body) == (200, b'{"status": "ok"}')
        status, headers, _ = _get(base_url, "/api/jobs/")
        assert status == 301 and headers["Location"].startswith("https://")
        status, headers, _ = _get(base_url, "/api/jobs/", {"X-Forwarded-Proto": "https"})
        assert status == 401
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


ANONYMOUS_PAGES = ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/api/docs/", "/admin/login/"]
SIGNED_IN_PAGES = ["/", "/accounts/password/", "/api/docs/"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "signed_in"), [(path, False) for path in ANONYMOUS_PAGES] + [(path, True) for path in SIGNED_IN_PAGES]
)
def test_every_page_carries_the_security_headers(settings, path, signed_in):
    settings.REGISTRATION_OPEN = True
    client = Client()
    if signed_in:
        client.force_login(user_create())
    response = client.get(path)
    assert response.status_code == 200, path
    expected = swagger_ui_policy() if path == "/api/docs/" else django_settings.CONTENT_SECURITY_POLICY
    assert response["Content-Security-Policy"] == expected
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'" and policy["object-src"] == "'none'"
    # Only Swagger UI's style attributes are let through, and only on its page.
    assert policy["style-src"] == ("'self' 'unsafe-inline'" if path == "/api/docs/" else "'self'")
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    # The policy is a header now: no page still carries its own <meta> policy.
    assert "http-equiv" not in response.content.decode().lower()


@pytest.mark.django_db
def test_swagger_ui_runs_its_script_from_a_file_not_inline():
    page = Client().get("/api/docs/").content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page, re.IGNORECASE), page
    script_url = re.search(r'<script src="([^"]*\?script=?)"', page)
    assert script_url, page
    script = Client().get(script_url.group(1))
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
