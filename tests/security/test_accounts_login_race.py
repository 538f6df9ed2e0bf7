"""Issue #14, item 13: parallel guesses cannot all pass the throttle's check before any of them is counted.

Forty wrong passwords for one account, fired at once at two gunicorn processes (four threads each) over
the API token endpoint and the original `POST /login`: at most ten may be answered 401, every other one 429.
And the locks that make the count atomic never deadlock under mixed parallel load.
"""

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import DatabaseError, connection
from django.test import RequestFactory

from accounts import services
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support.concurrency import at_once
from tests.support.http import basic
from tests.support.http import request as http_request
from tests.support.processes import web_server

pytestmark = [pytest.mark.django_db(transaction=True)]

EMAIL = "target@example.com"
PARALLEL_GUESSES = 40


def _api_sign_in(base_url: str, password: str):
    body = json.dumps({"email": EMAIL, "password": password}).encode()
    return http_request("POST", f"{base_url}/api/auth/token/", body=body, headers={"Content-Type": "application/json"})


def _original_sign_in(base_url: str, password: str):
    return http_request("POST", f"{base_url}/login", headers={"Authorization": basic(EMAIL, password)})


def test_forty_parallel_wrong_passwords_get_at_most_ten_401s(tmp_path, settings):
    user_create(email=EMAIL)
    limit = settings.LOGIN_FAILURES_PER_ACCOUNT
    assert PARALLEL_GUESSES < settings.LOGIN_FAILURES_PER_ADDRESS  # only the account's count is under test
    with web_server(tmp_path / "web1.log") as first, web_server(tmp_path / "web2.log") as second:

        def guess(number: int):
            server = (first, second)[number % 2]
            sign_in = (_api_sign_in, _original_sign_in)[number // 2 % 2]
            return lambda: sign_in(server, f"guess {number}")

        replies = at_once(*(guess(number) for number in range(PARALLEL_GUESSES)))
        statuses = Counter(getattr(reply, "status", repr(reply)) for reply in replies)
        assert statuses == {401: limit, 429: PARALLEL_GUESSES - limit}, statuses
        assert all(int(reply.headers["Retry-After"]) > 0 for reply in replies if reply.status == 429)

        # The right password is refused too, on both processes and both paths.
        assert _api_sign_in(first, DEFAULT_PASSWORD).status == 429
        assert _original_sign_in(second, DEFAULT_PASSWORD).status == 429


def test_parallel_sign_ins_on_many_keys_never_deadlock(settings):
    """Attempts, successes and the purge of stale rows side by side on one database, in waves a little longer
    apart than the window, as a guesser who comes back: each wave's first failures purge the rows that the
    wave's other attempts are adding back at that moment. None may end as a deadlock victim (a 503 on the
    API). A fast hasher, since the database's locking is under test here, not the password hash."""
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 1
    settings.LOGIN_FAILURES_PER_ADDRESS = 1_000_000
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    accounts = [user_create(email=f"user{number}@example.com").email for number in range(5)]

    def attempt(number: int) -> str:
        chooser = random.Random(number)
        email = chooser.choice([*accounts, f"nobody{number % 5}@example.com"])
        password = DEFAULT_PASSWORD if chooser.random() < 0.3 else "wrong"
        request = RequestFactory().post("/api/auth/token/", REMOTE_ADDR=f"192.0.2.{chooser.randrange(3)}")
        try:
            services.user_authenticate(request=request, email=email, password=password)
            return "signed in"
        except (services.InvalidCredentials, services.LoginThrottled) as exc:
            return type(exc).__name__
        except DatabaseError as exc:
            return repr(exc)
        finally:
            connection.close()

    outcomes = Counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        for wave in range(8):
            time.sleep(1.1)  # every row of the last wave is now older than the window
            outcomes.update(pool.map(attempt, range(wave * 250, (wave + 1) * 250)))
    assert set(outcomes) <= {"signed in", "InvalidCredentials", "LoginThrottled"}, outcomes
