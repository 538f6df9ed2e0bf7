"""/healthz and /readyz: the process, then each dependency, named when it fails."""

import pytest

from core import broker, storage
from tests.support.services import free_port
from videomp3 import dependencies, health

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


def test_readyz_is_ready_when_the_database_answers(client, health_routes, mongodb, rabbitmq):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


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


def test_readyz_stays_ready_with_the_shared_stores_down(client, health_routes, closed_mongodb, closed_broker):
    """Every web pod shares MongoDB and RabbitMQ: failing readiness for them would empty the Service."""
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": "ok"}


def test_dependency_checks_name_mongodb_and_the_broker_when_they_are_down(closed_mongodb, closed_broker):
    assert dependencies.dependencies_up() == {"database": True, "mongodb": False, "broker": False}


def test_dependency_checks_report_a_hung_dependency_within_their_deadline(closed_mongodb, monkeypatch, settings):
    settings.AMQP_URL = ""
    broker.reset()
    monkeypatch.setattr(dependencies, "CHECK_TIMEOUT_SECONDS", 0.5)
    assert dependencies.dependencies_up()["mongodb"] is False


def test_the_project_wires_the_health_middleware_first_and_routes_the_endpoints(settings):
    """The project's own settings and URLs, not the test's wiring (see DEPLOY_NOTES.md)."""
    from django.urls import resolve

    from videomp3 import metrics

    assert settings.MIDDLEWARE[0] == "videomp3.health.HealthCheckMiddleware", "it must run before Host and SSL checks"
    for path, view in (("/healthz", health.healthz), ("/readyz", health.readyz), ("/metrics", metrics.metrics)):
        assert resolve(path, urlconf="videomp3.urls").func is view, path
