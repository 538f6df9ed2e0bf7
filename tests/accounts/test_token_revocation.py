"""Issue #14, items 14 and 15: refresh tokens end with the password, a sign-in has an absolute lifetime,
and a deleted user's token is a 401 with a sentence.

Each way a password changes (the browser page, the emailed reset link, the admin, `manage.py changepassword`,
and `set_password` + `save` in code) makes every token issued before it useless: refresh tokens answer 401
and access tokens stop working too, which is what the password-change page promises.
"""

import re
import subprocess
import sys
import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support.concurrency import at_once
from tests.support.processes import PROJECT_DIR, role_env

pytestmark = pytest.mark.django_db

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new horse battery"


def sign_in(password: str = DEFAULT_PASSWORD) -> dict:
    response = APIClient().post("/api/auth/token/", {"email": EMAIL, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refresh(token: str):
    return APIClient(raise_request_exception=False).post("/api/auth/token/refresh/", {"refresh": token}, format="json")


def me(access: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/auth/me/")


def claims(token: str) -> dict:
    return jwt.decode(token, settings.JWT_SIGNING_KEY, algorithms=["HS256"])


# --- the ways a password changes ---------------------------------------------------------------------


def change_on_the_page(user):
    client = Client()
    client.force_login(user)
    response = client.post(
        "/accounts/password/",
        {"old_password": DEFAULT_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert "Other devices were signed out" in response.content.decode()


def reset_by_email(user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client = Client()
    assert client.post("/accounts/password/reset/", {"email": user.email}).status_code == 302
    link = re.search(r"/accounts/password/reset/[^/\s]+/[^/\s]+/", mail.outbox[-1].body).group(0)
    form = client.get(link, follow=True)
    set_password_url = form.redirect_chain[-1][0]
    done = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/accounts/password/reset/done/"


def change_in_the_admin(user):
    staff = user_create(email="staff@example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    response = client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def set_password_in_code(user):
    user.set_password(NEW_PASSWORD)
    user.save()


@pytest.mark.parametrize(
    "change_password",
    [
        pytest.param(lambda user, settings: change_on_the_page(user), id="password-change-page"),
        pytest.param(reset_by_email, id="password-reset-link"),
        pytest.param(lambda user, settings: change_in_the_admin(user), id="admin"),
        pytest.param(lambda user, settings: set_password_in_code(user), id="set-password-and-save"),
    ],
)
def test_a_password_change_refuses_every_token_issued_before_it(change_password, settings):
    user = user_create(email=EMAIL)
    phone, laptop = sign_in(), sign_in()
    rotated = refresh(laptop["refresh"]).json()  # a rotated chain ends too, not only the first token
    change_password(user, settings)

    for tokens in (phone, rotated):
        refused = refresh(tokens["refresh"])
        assert refused.status_code == 401, refused.content
        assert "password" in refused.json()["detail"] and refused.json()["detail"].endswith(".")
        assert me(tokens["access"]).status_code == 401
    # The new password signs in, and its tokens work.
    fresh = sign_in(NEW_PASSWORD)
    assert me(fresh["access"]).status_code == 200
    assert refresh(fresh["refresh"]).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_manage_py_changepassword_refuses_every_token_issued_before_it():
    user_create(email=EMAIL)
    tokens = sign_in()
    result = subprocess.run(
        [sys.executable, "manage.py", "changepassword", EMAIL],
        cwd=PROJECT_DIR,
        env=role_env(),
        input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=120,
        # No controlling terminal: getpass reads the new password from stdin.
        start_new_session=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert User.objects.get(email=EMAIL).check_password(NEW_PASSWORD)
    assert refresh(tokens["refresh"]).status_code == 401
    assert me(tokens["access"]).status_code == 401


def test_the_password_change_page_says_what_happens():
    user = user_create(email=EMAIL)
    client = Client()
    client.force_login(user)
    html = client.get("/accounts/password/").content.decode()
    assert "apps" in html and "signed out" in html


# --- an absolute lifetime for a chain of rotated refresh tokens -----------------------------------------


def test_rotation_never_moves_the_expiry_past_the_first_sign_in_plus_the_maximum(settings):
    settings.JWT_REFRESH_MAX_LIFETIME = timedelta(days=1)  # shorter than a refresh token's own 7 days
    user_create(email=EMAIL)
    first = sign_in()
    signed_in_at = claims(first["refresh"])["iat"]
    ceiling = signed_in_at + 24 * 3600
    assert claims(first["refresh"])["exp"] <= ceiling
    token = first["refresh"]
    for _ in range(3):
        rotated = refresh(token)
        assert rotated.status_code == 200
        token = rotated.json()["refresh"]
        assert claims(token)["exp"] <= ceiling
        assert claims(rotated.json()["access"])["exp"] <= ceiling


def test_a_chain_of_rotations_ends_at_the_maximum_lifetime(settings):
    """Refreshing every second keeps each token fresh, yet the chain ends when the sign-in is 3 s old."""
    settings.JWT_REFRESH_MAX_LIFETIME = timedelta(seconds=3)
    user_create(email=EMAIL)
    token = sign_in()["refresh"]
    started = claims(token)["iat"]
    while time.time() < started + 2:
        rotated = refresh(token)
        assert rotated.status_code == 200, rotated.content
        token = rotated.json()["refresh"]
        time.sleep(0.5)
    time.sleep(max(0.0, started + 3.1 - time.time()))
    ended = refresh(token)
    assert ended.status_code == 401, ended.content
    assert "sign in again" in ended.json()["detail"]


def test_a_refresh_token_from_a_sign_in_older_than_the_maximum_is_refused(settings):
    """A token still inside its own 7 days, but from a sign-in 31 days ago (the default maximum is 30)."""
    user_create(email=EMAIL)
    token = sign_in()["refresh"]
    payload = claims(token)
    month_ago = payload["iat"] - 31 * 24 * 3600
    payload.update({"auth_time": month_ago})
    aged = jwt.encode(payload, settings.JWT_SIGNING_KEY, "HS256")
    refused = refresh(aged)
    assert refused.status_code == 401
    assert "sign in again" in refused.json()["detail"]


def test_the_maximum_lifetime_is_read_from_the_environment():
    script = (
        "import django; django.setup(); from django.conf import settings; print(settings.JWT_REFRESH_MAX_LIFETIME.days)"
    )
    defaults = role_env()
    defaults.pop("JWT_REFRESH_MAX_DAYS", None)
    for env, expected in ((defaults, "30"), ({**defaults, "JWT_REFRESH_MAX_DAYS": "2"}, "2")):
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.stdout.strip() == expected, result.stderr


# --- tokens of a user that is gone, and tokens from before this release -----------------------------------


def test_refreshing_the_token_of_a_deleted_user_is_401_with_a_sentence():
    user = user_create(email=EMAIL)
    tokens = sign_in()
    user.delete()
    response = refresh(tokens["refresh"])
    assert response.status_code == 401, response.content[:500]
    assert "no longer exists" in response.json()["detail"]


def test_refreshing_the_token_of_a_deactivated_user_is_401_with_a_sentence():
    user = user_create(email=EMAIL)
    tokens = sign_in()
    user.is_active = False
    user.save()
    response = refresh(tokens["refresh"])
    assert response.status_code == 401
    assert "deactivated" in response.json()["detail"]


def test_a_refresh_token_without_the_sign_in_claims_is_refused():
    """Tokens issued before the password and sign-in-time claims existed cannot be checked: sign in again."""
    user_create(email=EMAIL)
    payload = claims(sign_in()["refresh"])
    for claim in ("auth_time", "hash_password"):
        payload.pop(claim, None)
    response = refresh(jwt.encode(payload, settings.JWT_SIGNING_KEY, "HS256"))
    assert response.status_code == 401
    assert "sign in again" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_two_parallel_refreshes_of_one_token_give_one_new_token():
    """Rotation spends the token once: the second of two simultaneous uses is refused, not handed a chain."""
    user_create(email=EMAIL)
    token = sign_in()["refresh"]
    replies = at_once(lambda: refresh(token), lambda: refresh(token))
    assert sorted(reply.status_code for reply in replies) == [200, 401], replies
