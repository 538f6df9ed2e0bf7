"""gunicorn as the image runs it (docker/gunicorn.conf.py): no control socket, JSON logs on request."""

import json
import urllib.request

import pytest

from tests.support.processes import web_server

pytestmark = pytest.mark.django_db(transaction=True)


def test_gunicorn_starts_without_a_home_directory_and_logs_no_control_socket_error(tmp_path):
    """The image's user has no home (HOME=/nonexistent) and a read-only root: gunicorn 27's control
    socket, under $HOME/.gunicorn by default, failed on every start."""
    log = tmp_path / "web.log"
    with web_server(log, production_config=True, HOME="/nonexistent", XDG_RUNTIME_DIR="") as url:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            assert response.status == 200
    text = log.read_text()
    assert "Booting worker" in text
    assert "Control server" not in text and "nonexistent" not in text, text


def test_log_format_json_makes_every_gunicorn_line_json(tmp_path):
    log = tmp_path / "web.log"
    with web_server(log, production_config=True, LOG_FORMAT="json") as url:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            assert response.status == 200
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    loggers = {entry["logger"] for entry in entries}
    assert {"gunicorn.error", "gunicorn.access"} <= loggers, loggers
    access = [entry for entry in entries if entry["logger"] == "gunicorn.access"]
    assert any('"GET /healthz HTTP/1.1" 200' in entry["message"] for entry in access), access
    assert any(entry["message"].startswith("Booting worker") for entry in entries)
