"""The web role with its database unreachable answers 503 with a sentence, never a 500."""

import time
import uuid

import jwt
import pytest
from django.conf import settings

from tests.support import http
from tests.support.processes import web_server

pytestmark = pytest.mark.e2e


@pytest.mark.django_db
def test_api_answers_503_when_the_database_is_unreachable(tmp_path):
    unreachable = f"sqlite:///{tmp_path}/missing-folder/db.sqlite3"  # the folder does not exist: every connect fails
    token = jwt.encode(
        {
            "token_type": "access",
            "exp": int(time.time()) + 300,
            "iat": int(time.time()),
            "jti": uuid.uuid4().hex,
            "user_id": "1",
        },
        settings.JWT_SIGNING_KEY,
        "HS256",
    )
    with web_server(tmp_path / "web.log", DATABASE_URL=unreachable) as base:
        for method, path in (("GET", "/api/jobs/"), ("GET", "/api/auth/me/"), ("POST", "/api/auth/token/")):
            reply = http.request(
                method,
                base + path,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                body=b'{"email": "a@example.com", "password": "x"}' if method == "POST" else None,
            )
            assert reply.status == 503, (path, reply.status, reply.body[:300])
            assert "database is unreachable" in reply.json()["detail"]
