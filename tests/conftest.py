import os
import uuid

import pytest

from tests.support.services import SecantusProcess, amqp_url, rabbitmq_reachable, service_missing


@pytest.fixture(scope="session")
def secantus_server(tmp_path_factory):
    """One SecantusDB process for the test run, with a fresh storage directory."""
    base = tmp_path_factory.mktemp("secantus")
    server = SecantusProcess(base / "data", base / "secantusd.log")
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        service_missing(f"SecantusDB could not start: {exc}")
    yield server
    server.stop()


@pytest.fixture
def mongodb(secantus_server, settings):
    """A clean MongoDB database for one test, on the SecantusDB server."""
    from core import storage

    settings.MONGODB_URI = secantus_server.uri
    settings.MONGODB_DB = f"test_{uuid.uuid4().hex[:12]}"
    storage.reset_client()
    yield secantus_server
    try:
        storage.drop_database()
    finally:
        storage.reset_client()


@pytest.fixture(scope="session")
def rabbitmq_url():
    url = amqp_url()
    reason = rabbitmq_reachable(url)
    if reason:
        service_missing(reason)
    return url


@pytest.fixture
def rabbitmq(rabbitmq_url, settings):
    """The machine's RabbitMQ with queue names private to this test."""
    from core import broker

    settings.AMQP_URL = rabbitmq_url
    settings.QUEUE_PREFIX = f"test-{uuid.uuid4().hex[:10]}-"
    broker.reset()
    yield rabbitmq_url
    try:
        broker.delete_queues()
    finally:
        broker.reset()


@pytest.fixture
def media_dir(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "media"


@pytest.fixture
def media_files(tmp_path_factory):
    """Generated media shared by the whole run (tests.support.media caches each file by kind and length)."""
    return tmp_path_factory.getbasetemp() / "media-cache"


@pytest.fixture
def alice(mongodb, rabbitmq):
    """An API client signed in as alice; `.user` is her User."""
    # Imported here: this conftest is also loaded as a plugin before Django is set up (tests/test_harness.py).
    from rest_framework.test import APIClient

    from tests.factories import user_create

    user = user_create(email="alice@example.com")
    client = APIClient()
    client.force_authenticate(user)
    client.user = user
    return client


def pytest_report_header(config):
    return [
        f"DATABASE_URL={os.environ.get('DATABASE_URL', '(embedded SQLite)')}",
        f"REQUIRE_SERVICES={os.environ.get('REQUIRE_SERVICES', '0')}",
    ]
