"""The per-user switch for the job emails: the API (PATCH /api/auth/me/) and the account page."""

import pytest
from rest_framework.test import APIClient

from tests.factories import user_create

pytestmark = pytest.mark.django_db


def test_the_api_turns_emails_off_and_on_and_refuses_a_non_boolean_with_a_sentence():
    user = user_create()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get("/api/auth/me/").json()["email_notifications"] is True
    response = client.patch("/api/auth/me/", {"email_notifications": False}, format="json")
    assert response.status_code == 200 and response.json()["email_notifications"] is False
    user.refresh_from_db()
    assert user.email_notifications is False
    refused = client.patch("/api/auth/me/", {"email_notifications": "maybe"}, format="json")
    assert refused.status_code == 400 and refused.json()["detail"]
    assert client.patch("/api/auth/me/", {}, format="json").status_code == 400
    user.refresh_from_db()
    assert user.email_notifications is False
    assert client.patch("/api/auth/me/", {"email_notifications": True}, format="json").json()["email_notifications"]


def test_the_account_page_shows_and_saves_the_setting(client):
    user = user_create()
    client.force_login(user)
    page = client.get("/accounts/")
    assert page.status_code == 200 and b'name="email_notifications"' in page.content and b" checked" in page.content
    saved = client.post("/accounts/", {})  # an unchecked box sends nothing
    assert saved.status_code == 302 and saved["Location"] == "/accounts/"
    user.refresh_from_db()
    assert user.email_notifications is False
    assert b"Job emails are off" in client.get("/accounts/").content
    client.post("/accounts/", {"email_notifications": "on"})
    user.refresh_from_db()
    assert user.email_notifications is True


def test_the_account_page_asks_to_sign_in(client):
    assert client.get("/accounts/").status_code == 302
