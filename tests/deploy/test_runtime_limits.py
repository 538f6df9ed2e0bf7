"""The web pod's probes and /tmp, checked against what the app's settings make of the rendered config."""

import json
import subprocess
import sys

import pytest

from tests.deploy.conftest import OVERLAYS, REPO, generated, named, quantity

# Cover frames, preflight checks' sparse copies and small files beside the uploads.
SMALL_FILES_HEADROOM = 1024**3
PRINT_UPLOAD_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps([settings.UPLOAD_SPOOL_BYTES, settings.MAX_UPLOAD_SIZE, settings.FILE_UPLOAD_TEMP_DIR]))"
)


def _web_container(objects: list[dict]) -> tuple[dict, dict]:
    pod = named(objects, "Deployment", "videomp3-web")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _settings_in_the_pod(objects: list[dict], container: dict) -> tuple[int, int, str]:
    """UPLOAD_SPOOL_BYTES, MAX_UPLOAD_SIZE and FILE_UPLOAD_TEMP_DIR as the web container starts with them:
    its ConfigMap and env, secrets as placeholders."""
    configured = {
        **generated(objects, "ConfigMap", "videomp3-config")["data"],
        **{item["name"]: item["value"] for item in container.get("env", []) if "value" in item},
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "videomp3.settings",
        # The pod reads its secrets from the mounted Secret (NAME_FILE); here they are placeholders instead.
        **{name: value for name, value in configured.items() if not name.endswith("_FILE")},
        "SECRET_KEY": "placeholder-secret-key-0123456789abcdefghij",
        "JWT_SIGNING_KEY": "placeholder-jwt-key-0123456789abcdefghijkl",
        "DATABASE_URL": "mysql://videomp3@127.0.0.1:3306/videomp3",
        "MONGODB_URI": "mongodb://127.0.0.1:27017/",
        "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/%2F",
    }
    result = subprocess.run(
        [sys.executable, "-c", PRINT_UPLOAD_SETTINGS], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    spool, max_size, temp_dir = json.loads(result.stdout.strip().splitlines()[-1])
    return spool, max_size, temp_dir


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_pods_tmp_holds_every_upload_it_accepts_at_once(rendered, overlay):
    objects = rendered[overlay]
    pod, container = _web_container(objects)
    spool, max_size, temp_dir = _settings_in_the_pod(objects, container)
    workers = int(next(item["value"] for item in container["env"] if item["name"] == "WEB_CONCURRENCY"))
    assert temp_dir == "/tmp", "uploads must be spooled to the sized emptyDir"
    # Each upload reserves its spooled body and the audio ffmpeg extracts from it (at most as large) out of
    # each process's budget, which must hold one of the largest size.
    assert spool >= 2 * max_size, "an upload of MAX_UPLOAD_SIZE would never find room"
    needed = workers * spool + SMALL_FILES_HEADROOM
    tmp = next(volume for volume in pod["volumes"] if volume["name"] == "tmp")
    size_limit = quantity(tmp["emptyDir"]["sizeLimit"])
    assert size_limit >= needed, f"{workers} workers' upload budgets need {needed / 1024**3:.1f} GiB of /tmp"
    resources = container["resources"]
    assert quantity(resources["requests"]["ephemeral-storage"]) >= size_limit, "schedule where /tmp fits"
    assert quantity(resources["limits"]["ephemeral-storage"]) >= size_limit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_liveness_reads_the_workers_heartbeats_not_an_http_request(rendered, overlay):
    _, container = _web_container(rendered[overlay])
    liveness = container["livenessProbe"]
    assert "httpGet" not in liveness, "an HTTP probe queues behind uploads holding every thread"
    assert liveness["exec"]["command"] == ["python", "/app/docker/entrypoint.py", "healthcheck", "web"]
    # The probe itself must answer within its timeout: it only stats a few files.
    assert liveness["timeoutSeconds"] >= 3
    assert (REPO / "docker" / "entrypoint.py").is_file()
