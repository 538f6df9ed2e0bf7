"""The webhooks page (Django test client): add an endpoint, its secret shown once, rotate, disable and
enable, the deliveries log with a redeliver button, refusals as sentences, and others' endpoints hidden."""

import pytest
from django.utils import timezone

from notifications.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.factories import user_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client):
    user = user_create(email="page@example.com")
    client.force_login(user)
    return client, user


def test_adding_an_endpoint_shows_its_secret_once(signed_in):
    client, user = signed_in
    response = client.post(
        "/accounts/webhooks/", {"url": "https://hooks.example.com/x", "events": ["job.done"], "description": "CI"}
    )
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get(owner=user)
    first = client.get("/accounts/webhooks/").content.decode()
    assert endpoint.secret in first and "https://hooks.example.com/x" in first and "CI" in first
    assert endpoint.secret not in client.get("/accounts/webhooks/").content.decode()  # once
    client.post(f"/accounts/webhooks/{endpoint.id}/rotate/")
    endpoint.refresh_from_db()
    assert endpoint.secret in client.get("/accounts/webhooks/").content.decode()


def test_refusals_are_sentences_on_the_page(signed_in):
    client, _ = signed_in
    response = client.post("/accounts/webhooks/", {"url": "http://10.0.0.5/hook", "events": ["job.done"]})
    assert response.status_code == 400 and "public addresses" in response.content.decode()
    response = client.post("/accounts/webhooks/", {"url": "https://example.com/" + "x" * 2000, "events": ["job.done"]})
    assert response.status_code == 400 and "shorter" in response.content.decode()
    response = client.post("/accounts/webhooks/", {"url": "https://hooks.example.com/x"})
    assert response.status_code == 400 and "Choose at least one event" in response.content.decode()


def test_disable_enable_redeliver_and_delete(signed_in):
    client, user = signed_in
    client.post("/accounts/webhooks/", {"url": "https://hooks.example.com/x", "events": ["job.done"]})
    endpoint = WebhookEndpoint.objects.get(owner=user)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        job_id="6f1c2f44-0d1e-4d7a-9d55-5d1b0b1e2c3a",
        event_type="job.done",
        message_id="msg_page",
        payload={},
        state="failed",
        attempts=1,
    )
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=timezone.now(), status_code=503, latency_ms=40, response_snippet="busy"
    )
    page = client.get("/accounts/webhooks/").content.decode()
    assert "msg_page" in page and "503" in page and "busy" in page and "Redeliver" in page
    client.post(f"/accounts/webhooks/{endpoint.id}/disable/")
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "Redeliver" not in client.get("/accounts/webhooks/").content.decode()
    client.post(f"/accounts/webhooks/{endpoint.id}/enable/")
    client.post(f"/accounts/webhooks/{endpoint.id}/deliveries/{delivery.id}/redeliver/")
    delivery.refresh_from_db()
    assert delivery.state == "pending" and delivery.message_id == "msg_page"
    other = user_create()
    client.force_login(other)
    assert client.post(f"/accounts/webhooks/{endpoint.id}/delete/").status_code == 404
    client.force_login(user)
    client.post(f"/accounts/webhooks/{endpoint.id}/delete/")
    assert not WebhookEndpoint.objects.exists()


def test_the_admin_lists_attempts_and_redelivers(client):
    admin = user_create(email="admin@example.com", is_staff=True, is_superuser=True)
    client.force_login(admin)
    endpoint = WebhookEndpoint.objects.create(
        owner=admin, url="https://hooks.example.com/a", events=["job.done"], secret="whsec_x"
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        job_id="6f1c2f44-0d1e-4d7a-9d55-5d1b0b1e2c3a",
        event_type="job.done",
        message_id="msg_admin",
        payload={},
        state="failed",
        attempts=1,
    )
    WebhookAttempt.objects.create(delivery=delivery, number=1, started_at=timezone.now(), status_code=500, latency_ms=7)
    change = client.get(f"/admin/notifications/webhookdelivery/{delivery.id}/change/")
    assert change.status_code == 200 and b"500" in change.content
    response = client.post(
        "/admin/notifications/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [str(delivery.id)]},
        follow=True,
    )
    assert b"1 queued again" in response.content
    delivery.refresh_from_db()
    assert delivery.state == "pending" and delivery.message_id == "msg_admin"
