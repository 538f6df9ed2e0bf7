"""The browser pages rendered in-process: error pages that look like the app, the sign-up switch,
safe redirects, and markup a strict Content-Security-Policy (default-src 'self') can hold."""

import json
import re
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.views import defaults

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, job_create, user_create
from uploads.services import sharing

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
APP_STYLESHEET = "/static/videomp3/app.css"


def assert_csp_safe(html: str, where: str) -> None:
    assert not INLINE_SCRIPT.search(html), f"{where}: inline <script>"
    assert not INLINE_STYLE.search(html), f"{where}: inline style"
    assert not INLINE_HANDLER.search(html), f"{where}: inline event handler"


def assert_csp_header(response, where: str) -> None:
    """The policy travels as a header (videomp3/csp.py); tests/security/test_deploy.py checks its content."""
    assert "default-src 'self'" in response["Content-Security-Policy"], f"{where}: no CSP header"


@pytest.fixture
def alice_client():
    user = user_create(email="alice@example.com")
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def test_every_page_is_free_of_inline_code(client, alice_client):
    job = job_create(
        owner=alice_client.user,
        original_filename="talk.mp4",
        size=1234,
        status="done",
        mp3_file_id="mp3-talk",
        mp3_size=999,
        mp3_duration=3.0,
        duration=3.0,
    )
    share_url = "/s/" + sharing.share_link_create(job=job, hours=1)[1]
    revoked, revoked_token = sharing.share_link_create(job=job, hours=1)
    sharing.share_link_revoke(share=revoked)
    sharing.feed_renew(owner=alice_client.user)
    gone = client.get("/s/" + revoked_token)
    assert gone.status_code == 410
    assert_csp_safe(gone.content.decode(), "a revoked share link")
    anonymous = [
        share_url,
        "/accounts/login/",
        "/accounts/signup/",
        "/accounts/password/reset/",
        "/accounts/password/reset/sent/",
        "/accounts/password/reset/done/",
        "/accounts/password/reset/MQ/bad-token/",
    ]
    for path in anonymous:
        response = client.get(path)
        assert response.status_code == 200, path
        assert_csp_safe(response.content.decode(), path)
        assert_csp_header(response, path)
    for path in ["/", f"/jobs/{job.id}/", "/accounts/password/", "/feed/", "/accounts/", "/accounts/webhooks/"]:
        response = alice_client.get(path)
        assert response.status_code == 200, path
        assert_csp_safe(response.content.decode(), path)
        assert_csp_header(response, path)


def test_the_jobs_page_starts_from_the_apis_first_page(alice_client):
    for number in range(25):
        job_create(owner=alice_client.user, original_filename=f"v{number}.mp4", size=10)
    other = user_create(email="mallory@example.com")
    job_create(owner=other, original_filename="not-yours.mp4", size=10)
    page = alice_client.get("/").content.decode()
    api = alice_client.get("/api/jobs/").json()
    initial = re.search(r'<script id="initial-jobs" type="application/json">(.*?)</script>', page, re.S).group(1)
    data = json.loads(initial)
    assert data["count"] == api["count"] == 25
    assert [job["id"] for job in data["results"]] == [job["id"] for job in api["results"]]
    assert data["next"] == "/api/jobs/?page=2"
    assert "not-yours.mp4" not in page


@pytest.mark.parametrize(
    "status, render",
    [
        (404, lambda request: defaults.page_not_found(request, Exception("nope"))),
        (403, lambda request: defaults.permission_denied(request, PermissionDenied())),
        (400, lambda request: defaults.bad_request(request, Exception("bad"))),
        (500, lambda request: defaults.server_error(request)),
    ],
)
def test_error_pages_look_like_the_app(status, render):
    request = RequestFactory().get("/somewhere/")
    request.user = AnonymousUser()
    response = render(request)
    html = response.content.decode()
    assert response.status_code == status
    assert APP_STYLESHEET in html and 'class="brand"' in html and f">{status}<" in html
    assert_csp_safe(html, f"{status}.html")


def test_unknown_and_other_users_jobs_are_a_404_page_like_the_app(alice_client, settings):
    settings.DEBUG = False
    other = user_create(email="mallory@example.com")
    theirs = job_create(owner=other, original_filename="secret.mp4", size=10)
    for path in [f"/jobs/{uuid.uuid4()}/", f"/jobs/{theirs.id}/", "/jobs/not-a-uuid/", "/no/such/page/"]:
        response = alice_client.get(path)
        assert response.status_code == 404, path
        html = response.content.decode()
        assert "We can't find that page" in html and APP_STYLESHEET in html
        assert "secret.mp4" not in html


def test_a_form_without_its_csrf_token_gets_the_apps_page():
    response = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "a@example.com", "password": "x"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "This form has expired" in html and APP_STYLESHEET in html


def test_sign_up_can_be_closed(client, settings):
    settings.REGISTRATION_OPEN = False
    assert "Create an account" not in client.get("/accounts/login/").content.decode()
    response = client.post("/accounts/signup/", {"email": "new@example.com", "password": "a long enough password"})
    assert response.status_code == 403 and "Sign-up is closed" in response.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()


def test_sign_up_signs_in_and_never_redirects_off_site(client, settings):
    settings.REGISTRATION_OPEN = True
    response = client.post(
        "/accounts/signup/?next=https://evil.example/",
        {"email": "New@Example.com", "password": "a long enough password", "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/api/auth/me/").json()["email"] == "new@example.com"
    again = Client().post("/accounts/signup/", {"email": "new@example.com", "password": "a long enough password"})
    assert "An account with this email address already exists" in again.content.decode()


def test_sign_in_follows_a_local_next_only(client):
    user_create(email="bob@example.com")
    form = {"username": "bob@example.com", "password": DEFAULT_PASSWORD}
    assert client.post("/accounts/login/", {**form, "next": "/jobs/abc/"})["Location"] == "/jobs/abc/"
    other = Client()
    assert other.post("/accounts/login/", {**form, "next": "https://evil.example/"})["Location"] == "/"


def test_the_staff_link_to_the_admin(alice_client):
    assert "/admin/" not in alice_client.get("/").content.decode()
    staff = user_create(email="staff@example.com", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert 'href="/admin/"' in client.get("/").content.decode()
