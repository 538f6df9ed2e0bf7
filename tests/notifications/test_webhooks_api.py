"""/api/webhooks/: endpoints with a server-made whsec_ secret shown once, rotation, refusals with sentences,
the deliveries log and redelivery."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.models import WebhookAttempt, WebhookDelivery
from tests.factories import user_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    client = APIClient()
    client.force_authenticate(user_create(email="hooks@example.com"))
    return client


def create(api, **fields):
    body = {"url": "https://hooks.example.com/videomp3", "events": ["job.done", "job.failed"], **fields}
    return api.post("/api/webhooks/", body, format="json")


def test_an_endpoint_gets_a_secret_shown_once_and_rotated_on_demand(api):
    response = create(api, description="CI")
    assert response.status_code == 201, response.content
    endpoint = response.json()
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) > 40
    assert endpoint["events"] == ["job.done", "job.failed"] and endpoint["enabled"] is True
    shown = api.get(f"/api/webhooks/{endpoint['id']}/").json()
    assert "secret" not in shown and shown["description"] == "CI"
    assert ["secret" in e for e in api.get("/api/webhooks/").json()] == [False]
    rotated = api.post(f"/api/webhooks/{endpoint['id']}/rotate-secret/").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"url": "ftp://example.com/x"}, "http"),
        ({"url": "not a url"}, "URL"),
        ({"url": "http://127.0.0.1:9000/hook"}, "private"),
        ({"url": "http://[::1]/hook"}, "private"),
        ({"url": "http://169.254.169.254/latest"}, "private"),
        ({"url": "https://user:pw@example.com/"}, "password"),
        ({"events": ["job.started"]}, "choose job.done, job.failed or job.expired"),
        ({"events": []}, "Choose at least one event"),
    ],
)
def test_bad_endpoints_are_refused_with_a_sentence(api, fields, words):
    response = create(api, **fields)
    assert response.status_code == 400, response.content
    assert words in response.json()["detail"], response.json()


def test_a_private_address_is_accepted_when_the_setting_allows_it(api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    assert create(api, url="http://127.0.0.1:9000/hook").status_code == 201


def test_other_users_endpoints_are_not_found_and_malformed_ids_are_400(api):
    other = APIClient()
    other.force_authenticate(user_create())
    endpoint_id = create(api).json()["id"]
    for method, path in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "rotate-secret/"),
        ("get", "deliveries/"),
    ]:
        assert getattr(other, method)(f"/api/webhooks/{endpoint_id}/{path}").status_code == 404
    assert api.get("/api/webhooks/nope/").status_code == 400
    assert api.delete(f"/api/webhooks/{endpoint_id}/").status_code == 204
    assert api.get(f"/api/webhooks/{endpoint_id}/").status_code == 404


def test_the_deliveries_log_lists_attempts_and_a_failed_delivery_is_redelivered_with_its_webhook_id(api):
    endpoint_id = create(api).json()["id"]
    delivery = WebhookDelivery.objects.create(
        endpoint_id=endpoint_id,
        job_id="6f1c2f44-0d1e-4d7a-9d55-5d1b0b1e2c3a",
        event_type="job.done",
        message_id="msg_abc",
        payload={"type": "job.done"},
        state=WebhookDelivery.State.FAILED,
        attempts=1,
    )
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=timezone.now(), status_code=500, latency_ms=12, response_snippet="no"
    )
    (listed,) = api.get(f"/api/webhooks/{endpoint_id}/deliveries/").json()
    assert listed["webhook_id"] == "msg_abc" and listed["state"] == "failed"
    assert listed["attempts"][0]["status_code"] == 500 and listed["attempts"][0]["response_snippet"] == "no"
    again = api.post(f"/api/webhooks/{endpoint_id}/deliveries/{delivery.id}/redeliver/")
    assert again.status_code == 202 and again.json()["state"] == "pending" and again.json()["webhook_id"] == "msg_abc"
    # A disabled endpoint is enabled first.
    api.patch(f"/api/webhooks/{endpoint_id}/", {"enabled": False}, format="json")
    refused = api.post(f"/api/webhooks/{endpoint_id}/deliveries/{delivery.id}/redeliver/")
    assert refused.status_code == 409 and "enable" in refused.json()["detail"]
