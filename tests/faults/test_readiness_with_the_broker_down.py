"""A web pod stays ready while RabbitMQ is down (uploads wait in the outbox); /metrics says it is down."""

import urllib.error
import urllib.request

import pytest

from tests.support.processes import web_server
from tests.support.services import free_port

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "test-metrics-token-0123456789"


def _get(url: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_readyz_answers_200_and_metrics_report_the_broker_down(tmp_path, mongodb, settings):
    closed_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    with web_server(
        tmp_path / "web.log",
        AMQP_URL=closed_broker,
        MONGODB_URI=settings.MONGODB_URI,
        MONGODB_DB=settings.MONGODB_DB,
        METRICS_TOKEN=TOKEN,
    ) as url:
        status, body = _get(url + "/readyz")
        assert status == 200, body
        status, text = _get(url + "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200, text
    assert 'videomp3_dependency_up{dependency="broker"} 0' in text
    assert 'videomp3_dependency_up{dependency="mongodb"} 1' in text
    assert 'videomp3_dependency_up{dependency="database"} 1' in text
