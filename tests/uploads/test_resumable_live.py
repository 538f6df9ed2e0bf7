"""Resumable uploads against the live stack: the reference client (tuspy) in its own process, killed
halfway, resumes from a new process whose PATCHes another gunicorn process serves (both on the same
database and SecantusDB), to a finished job."""

import hashlib
import json
import signal
import subprocess
import sys

import pytest
from rest_framework.test import APIClient

from conversion.services import job_convert
from core import storage
from tests.factories import DEFAULT_PASSWORD
from tests.support import media
from tests.support.http import request
from tests.support.pipeline import shared_service_env, stored_file_count
from tests.support.processes import PROJECT_DIR, role_env, web_server
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]


def tus_client(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.tus_upload", *args],
        cwd=PROJECT_DIR,
        env=role_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_tuspy_killed_halfway_resumes_from_a_new_process_on_another_web_process(alice, media_files, tmp_path):
    video = media.make_large_video(media_files)
    size = video.stat().st_size
    chunk_size = size // 8 + 1  # not a multiple of GridFS's chunk: each PATCH starts mid-chunk
    token = APIClient().post(
        "/api/auth/token/", {"email": alice.user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    access = token.json()["access"]
    env = shared_service_env(tmp_path / "emails")
    with web_server(tmp_path / "first.log", **env) as first, web_server(tmp_path / "second.log", **env) as second:
        killed = tus_client(first, access, str(video), str(chunk_size))
        try:
            kind, url = killed.stdout.readline().split()
            assert kind == "url" and url.startswith(first)
            sent = 0
            while sent < size // 2:
                kind, value = killed.stdout.readline().split()
                sent = int(value)
                killed.stdin.write("\n")
                killed.stdin.flush()
            killed.send_signal(signal.SIGKILL)
        finally:
            killed.kill()
            killed.wait()
        assert killed.returncode == -signal.SIGKILL
        resumed_url = url.replace(first, second)
        headers = {"Authorization": f"Bearer {access}", "Tus-Resumable": "1.0.0"}
        held = int(request("HEAD", resumed_url, headers=headers).headers["Upload-Offset"])
        assert size // 2 <= held < size  # what the killed client sent is kept; nothing more

        resumed = tus_client(second, access, str(video), str(chunk_size), resumed_url)
        output, _ = resumed.communicate("\n" * 20, timeout=120)
        assert resumed.returncode == 0, output
        lines = output.splitlines()
        assert lines[0] == f"url {resumed_url}"
        assert int(lines[1].split()[1]) == min(size, held + chunk_size)  # it went on from there, not from 0
        job = json.loads(lines[-1].removeprefix("done "))
        status = request("GET", resumed_url, headers=headers).json()
        assert status["state"] == "finished" and status["job"]["id"] == job["id"]
    assert job_convert(job_id=job["id"]) == "done"
    stored = Job.objects.get(id=job["id"])
    assert stored.size == size and stored.original_filename == video.name
    assert stored.content_sha256 == hashlib.sha256(video.read_bytes()).hexdigest()  # the bytes as sent
    assert stored_file_count(storage.TUS_UPLOADS) == 1  # the record naming the job: no chunk is left
