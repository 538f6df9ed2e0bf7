import base64
import time
import uuid

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.utils import get_md5_hash_password

from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support.http import basic

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


def obtain(client, email, password=DEFAULT_PASSWORD):
    return client.post("/api/auth/token/", {"email": email, "password": password}, format="json")


# --- register --------------------------------------------------------------------


def test_register_creates_an_account_that_can_sign_in(client, settings):
    settings.REGISTRATION_OPEN = True
    response = client.post(
        "/api/auth/register/", {"email": "New@Example.com", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["email"] == "new@example.com"
    assert obtain(client, "new@example.com").status_code == 200


def test_register_refuses_weak_password_and_duplicate_with_sentences(client, settings):
    settings.REGISTRATION_OPEN = True
    weak = client.post("/api/auth/register/", {"email": "a@example.com", "password": "123"}, format="json")
    assert weak.status_code == 400
    assert "password" in weak.json()["errors"]
    assert weak.json()["detail"].endswith(".")
    user_create(email="taken@example.com")
    duplicate = client.post(
        "/api/auth/register/", {"email": "taken@example.com", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.json()["detail"]
    bad_email = client.post(
        "/api/auth/register/", {"email": "not-an-email", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert bad_email.status_code == 400


def test_register_closed_is_403_with_a_sentence(client, settings):
    settings.REGISTRATION_OPEN = False
    response = client.post(
        "/api/auth/register/", {"email": "b@example.com", "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 403
    assert "Registration is closed" in response.json()["detail"]


# --- tokens ------------------------------------------------------------------------


def test_token_obtain_and_me(client):
    user = user_create(email="me@example.com")
    tokens = obtain(client, "ME@example.com").json()
    assert set(tokens) == {"access", "refresh"}
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = client.get("/api/auth/me/")
    assert response.status_code == 200
    assert response.json()["email"] == user.email


def test_token_obtain_wrong_password_is_401(client):
    user_create(email="me@example.com")
    response = obtain(client, "me@example.com", "wrong password")
    assert response.status_code == 401
    assert "wrong" in response.json()["detail"]


def test_refresh_rotates_and_blacklists_the_used_token(client):
    user_create(email="me@example.com")
    first = obtain(client, "me@example.com").json()
    rotated = client.post("/api/auth/token/refresh/", {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]
    reused = client.post("/api/auth/token/refresh/", {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401
    again = client.post("/api/auth/token/refresh/", {"refresh": rotated.json()["refresh"]}, format="json")
    assert again.status_code == 200


def test_logout_blacklists_the_refresh_token(client):
    user_create(email="me@example.com")
    tokens = obtain(client, "me@example.com").json()
    assert client.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json").status_code == 200
    after = client.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert after.status_code == 401
    assert client.post("/api/auth/logout/", {"refresh": "garbage"}, format="json").status_code == 401


def _claims(user, **overrides):
    now = int(time.time())
    claims = {
        "token_type": "access",
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "user_id": str(user.pk),
        # The password fingerprint every token carries (tests/accounts/test_token_revocation.py).
        "hash_password": get_md5_hash_password(user.password),
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda u: jwt.encode(_claims(u, exp=int(time.time()) - 10), settings.JWT_SIGNING_KEY, "HS256"), id="expired"
        ),
        pytest.param(lambda u: jwt.encode(_claims(u), "some-other-key-" * 4, "HS256"), id="wrong-key"),
        pytest.param(lambda u: jwt.encode(_claims(u), None, "none"), id="alg-none"),
        pytest.param(lambda u: jwt.encode(_claims(u), settings.JWT_SIGNING_KEY, "HS512"), id="wrong-alg"),
        pytest.param(
            lambda u: jwt.encode(_claims(u, token_type="refresh"), settings.JWT_SIGNING_KEY, "HS256"),
            id="refresh-as-access",
        ),
        pytest.param(lambda u: "not.a.token", id="garbage"),
    ],
)
def test_me_rejects_bad_tokens_with_401(client, make_token):
    user = user_create()
    good = jwt.encode(_claims(user), settings.JWT_SIGNING_KEY, "HS256")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {good}")
    assert client.get("/api/auth/me/").status_code == 200  # the crafted claims are otherwise valid
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    assert client.get("/api/auth/me/").status_code == 401


def test_me_rejects_a_tampered_token(client):
    user_create(email="me@example.com")
    access = obtain(client, "me@example.com").json()["access"]
    header, payload, signature = access.split(".")
    claims = jwt.decode(access, options={"verify_signature": False})
    claims["user_id"] = "999999"
    forged_payload = jwt.encode(claims, "x", "HS256").split(".")[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {header}.{forged_payload}.{signature}")
    assert client.get("/api/auth/me/").status_code == 401


def test_me_rejects_a_deactivated_user(client):
    user = user_create(email="me@example.com")
    access = obtain(client, "me@example.com").json()["access"]
    user.is_active = False
    user.save()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert client.get("/api/auth/me/").status_code == 401


def test_me_without_credentials_is_401_with_a_sentence(client):
    response = client.get("/api/auth/me/")
    assert response.status_code == 401
    assert "Sign in" in response.json()["detail"]


# --- the original system's /login ------------------------------------------------------


def test_original_login_returns_the_bare_access_token(client):
    user = user_create(email="demo@example.com")
    response = client.post("/login", HTTP_AUTHORIZATION=basic("demo@example.com", DEFAULT_PASSWORD))
    assert response.status_code == 200
    token = response.content.decode()
    claims = jwt.decode(token, settings.JWT_SIGNING_KEY, algorithms=["HS256"])
    assert claims["user_id"] == str(user.pk) and claims["token_type"] == "access"
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/auth/me/").status_code == 200


@pytest.mark.parametrize(
    ("authorization", "expected_body"),
    [
        (None, "missing credentials"),
        ("Basic !!!not-base64!!!", "malformed credentials"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "malformed credentials"),
        ("Bearer abc", "malformed credentials"),
        (basic("demo@example.com", "wrong"), "invalid credentials"),
        (basic("nobody@example.com", DEFAULT_PASSWORD), "invalid credentials"),
    ],
)
def test_original_login_errors_are_401(client, authorization, expected_body):
    user_create(email="demo@example.com")
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.post("/login", **headers)
    assert response.status_code == 401
    assert response.content.decode().startswith(expected_body)


def test_original_login_only_accepts_post(client):
    assert client.get("/login").status_code == 405


# --- brute force ---------------------------------------------------------------------------


def test_eleventh_failure_is_429_with_retry_after_and_success_is_blocked_too(client):
    user_create(email="target@example.com")
    for attempt in range(10):
        assert obtain(client, "target@example.com", f"guess {attempt}").status_code == 401
    throttled = obtain(client, "target@example.com", "guess 11")
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 15 * 60 + 1
    assert "Try again" in throttled.json()["detail"]
    # The right password does not get through while throttled: otherwise guessing could go on.
    assert obtain(client, "target@example.com").status_code == 429
    basic_login = client.post("/login", HTTP_AUTHORIZATION=basic("target@example.com", DEFAULT_PASSWORD))
    assert basic_login.status_code == 429 and basic_login["Retry-After"]


def test_throttle_is_per_account_and_per_address(client, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 5
    user_create(email="one@example.com")
    user_create(email="two@example.com")
    for attempt in range(5):
        obtain(client, f"victim{attempt}@example.com", "guess")
    # This address has used its budget: even another account is refused from here...
    assert obtain(client, "one@example.com").status_code == 429
    # ...but the accounts themselves are not locked for other addresses.
    other = APIClient(REMOTE_ADDR="10.9.9.9")
    assert obtain(other, "one@example.com").status_code == 200


def test_forged_forwarded_for_does_not_reset_the_throttle(client):
    user_create(email="target@example.com")
    for attempt in range(10):
        client.post(
            "/api/auth/token/",
            {"email": "target@example.com", "password": "x"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
        )
    response = client.post(
        "/api/auth/token/",
        {"email": "target@example.com", "password": "x"},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )
    assert response.status_code == 429


def test_failure_counter_ages_out_of_the_window(client, settings):
    from datetime import timedelta

    from accounts.models import LoginFailure

    user_create(email="target@example.com")
    for attempt in range(10):
        obtain(client, "target@example.com", f"guess {attempt}")
    assert obtain(client, "target@example.com").status_code == 429
    LoginFailure.objects.update(created_at=LoginFailure.objects.first().created_at - timedelta(minutes=16))
    assert obtain(client, "target@example.com").status_code == 200


def test_admin_login_page_renders(client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"Email address" in response.content or b"email" in response.content.lower()


def test_admin_user_list_works_for_staff(client):
    staff = user_create(email="admin@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get("/admin/accounts/user/add/").status_code == 200
