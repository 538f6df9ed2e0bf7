"""Issue #14, item 13: one throttle for every login path, the Django admin's included.

The API token endpoint, the original `POST /login`, the browser sign-in page and `/admin/login/` all count
into the same database-backed failure count (per account and per client address); parallel guesses are in
tests/security/test_accounts_login_race.py.
"""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import LoginFailure
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support.http import basic

pytestmark = pytest.mark.django_db

EMAIL = "staff@example.com"
THROTTLED = "Too many failed sign-ins"


def api_sign_in(password: str):
    return APIClient().post("/api/auth/token/", {"email": EMAIL, "password": password}, format="json")


def original_sign_in(password: str):
    return APIClient().post("/login", HTTP_AUTHORIZATION=basic(EMAIL, password))


def page_sign_in(password: str, client: Client | None = None):
    return (client or Client()).post("/accounts/login/", {"username": EMAIL, "password": password})


def admin_sign_in(password: str, client: Client | None = None):
    return (client or Client()).post("/admin/login/", {"username": EMAIL, "password": password, "next": "/admin/"})


def test_the_admin_login_is_throttled_and_the_right_password_does_not_get_through():
    """The issue's report: 15 wrong passwords gave 15 × 200, and the 16th, the right one, signed in."""
    user_create(email=EMAIL, is_staff=True, is_superuser=True)
    for attempt in range(10):
        page = admin_sign_in(f"guess {attempt}")
        assert page.status_code == 200 and THROTTLED not in page.content.decode()
    for attempt in range(5):
        page = admin_sign_in(f"guess {attempt + 10}")
        assert THROTTLED in page.content.decode()
    client = Client()
    right = admin_sign_in(DEFAULT_PASSWORD, client)
    assert right.status_code == 200, "the right password signed in while the account was throttled"
    assert THROTTLED in right.content.decode()
    assert client.get("/admin/").status_code == 302  # still signed out
    assert LoginFailure.objects.filter(scope="account", key=EMAIL).count() == 10


def test_failures_on_every_path_count_toward_one_throttle_and_every_path_refuses():
    user_create(email=EMAIL, is_staff=True, is_superuser=True)
    assert api_sign_in("wrong 1").status_code == 401
    assert api_sign_in("wrong 2").status_code == 401
    assert api_sign_in("wrong 3").status_code == 401
    assert original_sign_in("wrong 4").status_code == 401
    assert original_sign_in("wrong 5").status_code == 401
    assert original_sign_in("wrong 6").status_code == 401
    assert "match an account" in page_sign_in("wrong 7").content.decode()
    assert "match an account" in page_sign_in("wrong 8").content.decode()
    assert THROTTLED not in admin_sign_in("wrong 9").content.decode()
    assert THROTTLED not in admin_sign_in("wrong 10").content.decode()

    # Ten failures over four paths: the right password is refused on each of them, with a sentence.
    api = api_sign_in(DEFAULT_PASSWORD)
    assert api.status_code == 429 and int(api["Retry-After"]) > 0
    assert api.json()["detail"].startswith(THROTTLED) and api.json()["detail"].endswith(".")
    original = original_sign_in(DEFAULT_PASSWORD)
    assert original.status_code == 429 and int(original["Retry-After"]) > 0
    assert original.content.decode().startswith(THROTTLED)
    page = page_sign_in(DEFAULT_PASSWORD)
    assert page.status_code == 200 and THROTTLED in page.content.decode()
    admin_client = Client()
    admin_page = admin_sign_in(DEFAULT_PASSWORD, admin_client)
    assert admin_page.status_code == 200 and THROTTLED in admin_page.content.decode()
    assert admin_client.get("/admin/").status_code == 302


def test_a_staff_sign_in_at_the_admin_still_works_and_clears_the_accounts_failures():
    user_create(email=EMAIL, is_staff=True, is_superuser=True)
    for attempt in range(3):
        admin_sign_in(f"guess {attempt}")
    client = Client()
    assert admin_sign_in(DEFAULT_PASSWORD, client).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert not LoginFailure.objects.filter(scope="account", key=EMAIL).exists()


def test_a_non_staff_account_cannot_use_the_admin_login():
    user_create(email=EMAIL)
    page = admin_sign_in(DEFAULT_PASSWORD)
    assert page.status_code == 200 and "staff account" in page.content.decode()


def test_a_successful_sign_in_does_not_count_against_its_address(settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    user_create(email=EMAIL)
    for _ in range(5):
        assert api_sign_in(DEFAULT_PASSWORD).status_code == 200
    assert not LoginFailure.objects.exists()


def test_an_email_longer_than_an_account_can_have_is_counted_not_a_server_error():
    long_email = "x" * 300 + "@example.com"
    response = APIClient().post("/login", HTTP_AUTHORIZATION=basic(long_email, "guess"))
    assert response.status_code == 401
