"""/healthz and /readyz: the process, then each dependency, named when it fails."""

import pytest

from core import broker, storage
from tests.support.services import free_port
from videomp3 import health

pytestmark = pytest.mark.django_db


def test_healthz_answers_ok_without_asking_any_dependency(client, health_routes):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_probes_answer_with_the_pod_ip_as_host_and_ssl_redirect_on(client, health_routes):
    health_routes.ALLOWED_HOSTS = ["videomp3.example.com"]
    health_routes.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz", HTTP_HOST="10.244.0.17:8000").status_code == 200
    assert client.get("/api/docs/", HTTP_HOST="10.244.0.17:8000").status_code == 400
    assert client.get("/api/docs/", HTTP_HOST="videomp3.example.com").status_code == 301


def test_probes_take_no_writes(client, health_routes):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


def test_readyz_is_ready_when_database_mongodb_and_rabbitmq_answer(client, health_routes, mongodb, rabbitmq):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "mongodb": "ok", "broker": "ok"}}


@pytest.fixture
def closed_mongodb(settings):
    settings.MONGODB_URI = f"mongodb://127.0.0.1:{free_port()}/"
    storage.reset_client()
    yield
    storage.reset_client()


@pytest.fixture
def closed_broker(settings):
    settings.AMQP_URL = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    broker.reset()
    yield
    broker.reset()


def test_readyz_names_mongodb_when_it_is_down(client, health_routes, closed_mongodb, settings):
    settings.AMQP_URL = ""  # the in-process queue: only MongoDB is missing
    broker.reset()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["mongodb"]
    assert body["checks"] == {"database": "ok", "mongodb": "failed", "broker": "ok"}
    assert body["detail"].startswith("MongoDB is unreachable; check MONGODB_URI")


def test_readyz_names_the_broker_when_it_is_down(client, health_routes, mongodb, closed_broker):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"] == "failed"
    assert "RabbitMQ is unreachable; check AMQP_URL" in body["detail"]


def test_readyz_reports_a_hung_dependency_within_its_deadline(
    client, health_routes, closed_mongodb, monkeypatch, settings
):
    settings.AMQP_URL = ""
    broker.reset()
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.5)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["mongodb"] == "timeout"


def test_the_project_wires_the_health_middleware_first_and_routes_the_endpoints(settings):
    """The project's own settings and URLs, not the test's wiring (see DEPLOY_NOTES.md)."""
    from django.urls import resolve

    from videomp3 import metrics

    assert settings.MIDDLEWARE[0] == "videomp3.health.HealthCheckMiddleware", "it must run before Host and SSL checks"
    for path, view in (("/healthz", health.healthz), ("/readyz", health.readyz), ("/metrics", metrics.metrics)):
        assert resolve(path, urlconf="videomp3.urls").func is view, path
