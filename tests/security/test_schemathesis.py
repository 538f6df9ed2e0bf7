"""Schemathesis against the live schema: gunicorn (as production runs it) with the real stores, a valid
token, and generated requests for the jobs endpoints and the original download. No server errors, and
every answer conforms to /api/schema/ (status codes, content types, bodies).

Bounded so it stays well under two minutes on two cores: a few examples per operation, explicit and
generated phases only (no shrinking of failures beyond what Hypothesis does by default), no stateful runs.
"""

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

from conversion.services import job_convert
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support import media
from tests.support.http import post_files
from tests.support.http import request as http_request
from tests.support.pipeline import shared_service_env
from tests.support.processes import web_server

pytestmark = [pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 25
# The endpoints a signed-in client drives; sign-in itself is covered by the catalog (its throttle would
# turn generated wrong passwords into 429s).
OPERATIONS = r"^/(api/jobs/.*|api/feed/|api/auth/me/|api/webhooks/.*|download)$"


def _checks():
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _explicit_cases(operation, jobs: dict, wav: bytes, hooks: dict | None = None) -> list:
    """Requests with the user's real ids and a real file, so success answers are validated too, not only refusals."""
    if operation.path.startswith("/api/webhooks/"):
        return _webhook_cases(operation, hooks or {})
    if "{share_id}" in operation.path:
        return [operation.Case(path_parameters={"job_id": jobs["done"]["id"], "share_id": jobs["share"]["id"]})]
    if operation.path.endswith("/shares/") and operation.method.upper() == "POST":
        return [
            operation.Case(
                path_parameters={"job_id": jobs["done"]["id"]},
                body={"expires_in_hours": 2},
                media_type="application/json",
            )
        ]
    if operation.path == "/api/jobs/" and operation.method.upper() == "POST":
        return [operation.Case(body={"file": wav}, media_type="multipart/form-data")]
    if operation.path == "/download":
        return [operation.Case(query={"fid": jobs["done"]["mp3_file_id"]})]
    if "{job_id}" not in operation.path:
        return []
    ids = [jobs["queued"]["id"], jobs["done"]["id"]]
    if operation.method.upper() == "DELETE":
        ids = [jobs["deletable"]["id"]]
    return [operation.Case(path_parameters={"job_id": job_id}) for job_id in ids]


def _webhook_cases(operation, hooks: dict) -> list:
    """The user's real endpoint and delivery, and a valid new endpoint, so their success answers are checked too."""
    method = operation.method.upper()
    if operation.path == "/api/webhooks/":
        body = {"url": "https://hooks.example.com/fuzz", "events": ["job.done"], "description": "fuzz"}
        return [operation.Case(body=body, media_type="application/json")] if method == "POST" else []
    endpoint_id = hooks["deletable"] if method == "DELETE" else hooks["endpoint"]
    parameters = {"endpoint_id": endpoint_id}
    if "{delivery_id}" in operation.path:
        parameters["delivery_id"] = hooks["delivery"]
    body = {"description": "changed", "events": ["job.done", "job.failed"]} if method == "PATCH" else None
    if body is None:
        return [operation.Case(path_parameters=parameters)]
    return [operation.Case(path_parameters=parameters, body=body, media_type="application/json")]


def _webhook_fixtures(base_url: str, auth: dict) -> dict:
    """An endpoint with one failed delivery (written as the notifier would), and one to delete."""
    from notifications.models import WebhookDelivery

    def endpoint() -> str:
        body = json.dumps({"url": "https://hooks.example.com/x", "events": ["job.done"]}).encode()
        headers = {**auth, "Content-Type": "application/json"}
        return http_request("POST", f"{base_url}/api/webhooks/", body=body, headers=headers).json()["id"]

    hooks = {"endpoint": endpoint(), "deletable": endpoint()}
    delivery = WebhookDelivery.objects.create(
        endpoint_id=hooks["endpoint"],
        job_id="6f1c2f44-0d1e-4d7a-9d55-5d1b0b1e2c3a",
        event_type="job.done",
        message_id="msg_fuzz",
        payload={"type": "job.done"},
        state="failed",
    )
    hooks["delivery"] = str(delivery.id)
    return hooks


def test_the_live_api_answers_as_its_schema_says(mongodb, rabbitmq, tmp_path, tmp_path_factory):
    user_create(email="fuzz@example.com")
    env = {**shared_service_env(tmp_path / "emails"), "QUOTA_QUEUED_JOBS_PER_USER": "0"}
    with web_server(tmp_path / "web.log", **env) as base_url:
        login = http_request(
            "POST",
            f"{base_url}/api/auth/token/",
            body=json.dumps({"email": "fuzz@example.com", "password": DEFAULT_PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
        )
        auth = {"Authorization": f"Bearer {login.json()['access']}"}
        wav = media.make_media(tmp_path_factory.getbasetemp() / "media-cache", "wav_pcm")
        jobs = {
            name: post_files(f"{base_url}/api/jobs/", [("file", wav)], headers=auth).json()
            for name in ("queued", "done", "deletable")
        }
        assert job_convert(job_id=jobs["done"]["id"]) == "done"
        jobs["done"] = http_request("GET", f"{base_url}/api/jobs/{jobs['done']['id']}/", headers=auth).json()
        jobs["share"] = http_request(
            "POST", f"{base_url}/api/jobs/{jobs['done']['id']}/shares/", headers=auth
        ).json()  # revoked by the share operation's explicit case
        hooks = _webhook_fixtures(base_url, auth)
        schema = schemathesis.openapi.from_url(f"{base_url}/api/schema/").include(
            path_regex=OPERATIONS, method=["GET", "POST", "PATCH", "DELETE"]
        )
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 13, [operation.label for operation in operations]
        failures, statuses = [], []
        for operation in operations:

            @given(case=operation.as_strategy())
            @hypothesis_settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def check(case):
                response = case.call(base_url=base_url, headers=auth, timeout=60)
                statuses.append((case.operation.label, response.status_code))
                case.validate_response(response, checks=_checks())

            try:
                check()
                for case in _explicit_cases(operation, jobs, wav.read_bytes(), hooks):
                    response = case.call(base_url=base_url, headers=auth, timeout=60)
                    statuses.append((operation.label, response.status_code))
                    case.validate_response(response, checks=_checks())
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every failure, report all
                failures.append(f"{operation.label}: {str(exc)[:1500]}")
        assert not failures, "\n\n".join(failures)
    # It really ran: every operation was called, with answers beyond the happy path.
    assert {label for label, _ in statuses} == {operation.label for operation in operations}
    assert len(statuses) >= 5 * len(operations)
    print(f"schemathesis: {len(statuses)} requests over {len(operations)} operations:", sorted(set(statuses)))
