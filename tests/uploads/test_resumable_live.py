"""Resumable uploads against the live stack: the reference client (tuspy) in its own process, killed
halfway, resumes from a new process whose PATCHes another gunicorn process serves (both on the same
database and SecantusDB), to a finished job."""

import hashlib
import json
import signal
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from rest_framework.test import APIClient

from conversion.services import job_convert
from core import storage
from tests.factories import DEFAULT_PASSWORD
from tests.support import media
from tests.support.http import request
from tests.support.pipeline import shared_service_env, stored_file_count
from tests.support.processes import PROJECT_DIR, role_env, wait_until, web_server
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


def test_a_held_chunk_takes_an_upload_slot_and_a_cut_one_keeps_what_arrived(alice, tmp_path):
    """A PATCH holds a gunicorn thread while its body arrives, so it counts among MAX_CONCURRENT_UPLOADS:
    one more is answered 503 with Retry-After before its body is read. A PATCH whose client goes away
    mid-body keeps the bytes that arrived (tus core), and the client resumes from there."""
    token = APIClient().post(
        "/api/auth/token/", {"email": alice.user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    access = token.json()["access"]
    headers = {"Authorization": f"Bearer {access}", "Tus-Resumable": "1.0.0"}
    env = shared_service_env(tmp_path / "emails") | {"MAX_CONCURRENT_UPLOADS": "1"}
    length = 4 * 1024**2
    with web_server(tmp_path / "web.log", **env) as base_url:
        created = request("POST", f"{base_url}/api/uploads/", headers={**headers, "Upload-Length": str(length)})
        url = created.headers["Location"]
        path = urlsplit(url).path
        chunk = {**headers, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        held = socket.create_connection((urlsplit(base_url).hostname, urlsplit(base_url).port), timeout=30)
        try:
            head = f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in chunk.items()) + "\r\n"
            sent = 600 * 1024  # more than two GridFS chunks
            held.sendall(head.encode() + b"h" * sent)
            # Another upload's empty PATCH: one that reaches the server before the held one is answered 204,
            # harmlessly, and asked again.
            other = request("POST", f"{base_url}/api/uploads/", headers={**headers, "Upload-Length": "10"})
            refused = wait_until(
                lambda: (
                    (reply := request("PATCH", other.headers["Location"], body=b"", headers=chunk)).status == 503
                    and reply
                ),
                timeout=30,
            )
            assert refused and int(refused.headers["Retry-After"]) > 0
            assert refused.json()["code"] == "uploads_at_capacity"
        finally:
            held.close()  # the client goes away mid-body
        offset = wait_until(
            lambda: int(request("HEAD", url, headers=headers).headers["Upload-Offset"]) or None, timeout=30
        )
        assert offset == sent
        resumed = request("PATCH", url, body=b"r" * 1024, headers={**chunk, "Upload-Offset": str(offset)})
        assert resumed.status == 204 and int(resumed.headers["Upload-Offset"]) == sent + 1024
