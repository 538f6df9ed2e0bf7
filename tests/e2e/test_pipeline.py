"""The whole pipeline on the production services, with run_converter and run_notifier as real processes:
upload (web, in-process) → GridFS → RabbitMQ → converter → GridFS → RabbitMQ → notifier → email → download."""

import re
import subprocess
import time

import pytest
from rest_framework.test import APIClient

from core import storage
from core.media import probe
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support import http, media
from tests.support.pipeline import (
    email_text,
    read_emails,
    shared_service_env,
    stored_file_count,
    stored_files_and_orphan_chunks,
    wait_for_job,
)
from tests.support.processes import manage_command, stop_process, wait_until, web_server
from tests.support.uploads import upload
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PIPELINE_INPUTS = [
    "mp4_h264_aac_moov_end",
    "mkv_vp9_opus",
    "webm_vp8_vorbis",
    "avi_mpeg4_mp3",
    "mov_h264_aac",
    "wav_pcm",
    "ogg_vorbis",
]


@pytest.fixture
def workers(mongodb, rabbitmq, tmp_path):
    """run_converter and run_notifier as processes, sharing the test's database, GridFS and queues."""
    email_dir = tmp_path / "emails"
    env = shared_service_env(email_dir)
    processes = {
        "converter": manage_command(["run_converter"], tmp_path / "converter.log", **env),
        "notifier": manage_command(["run_notifier"], tmp_path / "notifier.log", **env),
    }
    processes["email_dir"] = email_dir
    processes["logs"] = tmp_path
    yield processes
    for name in ("converter", "notifier"):
        code = stop_process(processes[name])
        assert code == 0, f"{name} exited {code} on SIGTERM:\n{(tmp_path / f'{name}.log').read_text()[-3000:]}"


def _states_seen(job_id, timeout=90):
    """Poll the job, recording each state it was seen in, until it settles."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(id=job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.status in (Job.Status.DONE, Job.Status.FAILED) and (job.status != Job.Status.DONE or job.notified_at):
            return job, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck: states {seen}")


def test_every_input_kind_becomes_a_valid_mp3_with_one_email(workers, alice, media_files, tmp_path):
    page_client = APIClient()
    page_client.login(email="alice@example.com", password=DEFAULT_PASSWORD)
    uploaded = {}
    for kind in PIPELINE_INPUTS:
        path = media.make_media(media_files, kind, seconds=3.0)
        response = upload(alice, path)
        assert response.status_code == 202, (kind, response.content)
        uploaded[kind] = (path, response.json()["id"])

    for kind, (path, job_id) in uploaded.items():
        job, seen = _states_seen(job_id)
        assert job.status == Job.Status.DONE, (kind, job.error)
        assert seen[-1] == "done" and set(seen) <= {"queued", "converting", "done"}, seen
        assert job.progress == 100 and job.started_at <= job.finished_at <= job.notified_at
        assert job.video_file_id == "" and job.source_file_id  # the video never stored; its audio kept

        download = alice.get("/download", {"fid": job.mp3_file_id})
        assert download.status_code == 200 and download["Content-Type"] == "audio/mpeg"
        mp3_path = tmp_path / f"{kind}.mp3"
        mp3_path.write_bytes(b"".join(download.streaming_content))
        info = probe.probe(mp3_path)
        assert info.container == "mp3" and info.audio_codecs == ["mp3"], (kind, info)
        assert abs(info.duration - probe.media_duration(path)) < 0.2, (kind, info.duration)

    assert stored_file_count(storage.VIDEOS) == 0
    emails = wait_until(
        lambda: len(read_emails(workers["email_dir"])) >= len(PIPELINE_INPUTS) and read_emails(workers["email_dir"]), 10
    )
    assert len(emails) == len(PIPELINE_INPUTS)  # exactly one each
    for _, job_id in uploaded.values():
        (message,) = [m for m in emails if job_id in email_text(m)]
        assert message["To"] == "alice@example.com"
        link = re.search(r"http://videomp3\.test(/jobs/[0-9a-f-]+/)", email_text(message)).group(1)
        assert link == f"/jobs/{job_id}/"
        assert APIClient().get(link).status_code == 302  # the page asks to sign in first
        page = page_client.get(link)
        assert page.status_code == 200 and f"/api/jobs/{job_id}/mp3".encode() in page.content
        mp3 = page_client.get(f"/api/jobs/{job_id}/mp3")
        assert mp3.status_code == 200 and int(mp3["Content-Length"]) > 1000


def test_no_audio_upload_is_refused_and_a_media_failure_fails_the_job(workers, alice, media_files):
    assert upload(alice, media.make_media(media_files, "mp4_no_audio")).status_code == 422
    # A file that probes fine but whose audio cannot be decoded fails at conversion, with a sentence.
    broken = media.make_undecodable_audio(media_files)
    response = upload(alice, broken)
    assert response.status_code == 202, response.content
    job = wait_for_job(response.json()["id"], lambda j: j.status in ("failed", "done"))
    assert job.status == "failed" and job.error.endswith(".") and "Traceback" not in job.error
    assert job.attempts == 1  # a media error is not retried
    assert storage.file_exists(storage.SOURCES, job.source_file_id)  # kept, so it can be retried


def test_retry_of_a_failed_job_converts_it(workers, alice, media_files):
    job_id = upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]
    wait_for_job(job_id, lambda j: j.status == "done" and j.notified_at)
    # Make it look failed, as a failure would have left it: its audio source is still stored.
    Job.objects.filter(id=job_id).update(status="failed", error="It failed.", notified_at=None)
    response = alice.post(f"/api/jobs/{job_id}/retry/")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    job = wait_for_job(job_id, lambda j: j.status == "done" and j.notified_at)
    assert job.attempts == 2
    assert stored_file_count(storage.MP3S) == 2  # one file and its one chunk: the retry replaced the MP3


def test_range_requests(workers, alice, media_files):
    job_id = upload(alice, media.make_media(media_files, "mp4_h264_aac_moov_end")).json()["id"]
    job = wait_for_job(job_id, lambda j: j.status == "done")
    whole = b"".join(alice.get(f"/api/jobs/{job_id}/mp3").streaming_content)
    size = len(whole)
    assert size == job.mp3_size
    for header, start, end in [
        ("bytes=0-0", 0, 0),
        ("bytes=100-5000", 100, 5000),
        (f"bytes={size - 10}-", size - 10, size - 1),
        ("bytes=-20", size - 20, size - 1),
    ]:
        response = alice.get(f"/api/jobs/{job_id}/mp3", HTTP_RANGE=header)
        assert response.status_code == 206, header
        assert response["Content-Range"] == f"bytes {start}-{end}/{size}"
        body = b"".join(response.streaming_content)
        assert body == whole[start : end + 1] and int(response["Content-Length"]) == len(body)
    unsatisfiable = alice.get(f"/api/jobs/{job_id}/mp3", HTTP_RANGE=f"bytes={size}-")
    assert unsatisfiable.status_code == 416 and unsatisfiable["Content-Range"] == f"bytes */{size}"
    full = alice.get(f"/api/jobs/{job_id}/mp3", HTTP_RANGE="bytes=0-1,5-6")  # multiple ranges: whole file
    assert full.status_code == 200 and full["Accept-Ranges"] == "bytes"
    assert full["Content-Disposition"].startswith("attachment; filename=")
    assert full["X-Content-Type-Options"] == "nosniff"


def test_delete_of_a_done_job_and_of_a_converting_one(workers, alice, media_files):
    done_id = upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]
    wait_for_job(done_id, lambda j: j.status == "done")
    assert alice.delete(f"/api/jobs/{done_id}/").status_code == 204
    assert not Job.objects.filter(id=done_id).exists()
    assert stored_file_count(storage.MP3S) == 0

    long_input = media.make_media(media_files, "mkv_vp9_opus", seconds=120.0)
    converting_id = upload(alice, long_input).json()["id"]
    wait_for_job(converting_id, lambda j: j.status == "converting", timeout=60)
    response = alice.delete(f"/api/jobs/{converting_id}/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    time.sleep(3)  # the converter notices within a second, stops ffmpeg and stores nothing
    job = Job.objects.get(id=converting_id)
    assert job.status == "cancelled" and job.mp3_file_id == ""
    # It keeps its audio source and cover (to be retried without a new upload) until deleted again.
    assert stored_file_count(storage.MP3S) == 0
    kept = [job.source_file_id, job.cover_file_id]
    assert all(storage.file_exists(storage.SOURCES, file_id) for file_id in kept)
    assert alice.delete(f"/api/jobs/{converting_id}/").status_code == 204
    assert not any(storage.file_exists(storage.SOURCES, file_id) for file_id in kept)  # released at the commit
    # The converter is still alive and takes the next job.
    next_id = upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]
    assert wait_for_job(next_id, lambda j: j.status == "done").status == "done"


def test_original_system_client_flow_over_http(workers, media_files, tmp_path):
    """login → upload → download exactly as the original system's client did it, against gunicorn."""
    user_create(email="orig@example.com")
    env = shared_service_env(workers["email_dir"])
    with web_server(tmp_path / "web.log", **env) as base:
        token_response = http.request(
            "POST", f"{base}/login", headers={"Authorization": http.basic("orig@example.com", DEFAULT_PASSWORD)}
        )
        assert token_response.status == 200
        token = token_response.body.decode()
        bearer = {"Authorization": f"Bearer {token}"}

        path = media.make_media(media_files, "mp4_h264_aac_moov_end")
        uploaded = http.post_files(f"{base}/upload", [("file", path)], headers=bearer)
        assert uploaded.status == 200, uploaded.body
        job_id = uploaded.json()["id"]
        job = wait_for_job(job_id, lambda j: j.status == "done")
        download = http.request("GET", f"{base}/download?fid={job.mp3_file_id}", headers=bearer)
        assert download.status == 200 and download.headers["Content-Type"] == "audio/mpeg"
        assert len(download.body) == job.mp3_size

        # The original's error cases keep their status codes; an unknown id is 404 instead of its 500.
        assert http.post_files(f"{base}/upload", [("file", path)]).status == 401
        assert http.post_files(f"{base}/upload", [], headers=bearer).status == 400
        assert http.post_files(f"{base}/upload", [("a", path), ("b", path)], headers=bearer).status == 400
        assert http.request("GET", f"{base}/download", headers=bearer).status == 400
        assert http.request("GET", f"{base}/download?fid=507f1f77bcf86cd799439011", headers=bearer).status == 404
        assert http.request("GET", f"{base}/download?fid={job.mp3_file_id}").status == 401
        assert http.request("POST", f"{base}/login").status == 401


LONG_SECONDS = 900.0  # converts in several seconds here: long enough to signal mid-conversion


@pytest.mark.parametrize(("grace", "expected"), [("0", "queued"), ("60", "done")], ids=["hand-back", "finish-in-grace"])
def test_sigterm_mid_job_exits_0_and_the_job_completes_exactly_once(
    mongodb, rabbitmq, alice, media_files, tmp_path, grace, expected
):
    env = {**shared_service_env(tmp_path / "emails"), "SHUTDOWN_GRACE_SECONDS": grace}
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **env)
    try:
        job_id = upload(alice, media.make_media(media_files, "opus_long_lowrate", seconds=LONG_SECONDS)).json()["id"]
        wait_for_job(job_id, lambda j: j.status == "converting" and j.progress > 0, timeout=60)
        converter.send_signal(subprocess.signal.SIGTERM)
        assert converter.wait(timeout=int(grace) + 30) == 0
        job = Job.objects.get(id=job_id)
        assert job.status == expected  # handed back or finished: never lost, never failed
        if expected == "queued":
            converter = manage_command(["run_converter"], tmp_path / "converter2.log", **env)
            job = wait_for_job(job_id, lambda j: j.status == "done", timeout=120)
            assert job.attempts == 2
        else:
            assert job.attempts == 1
        assert stored_files_and_orphan_chunks(storage.MP3S) == (1, 0)  # exactly one MP3, nothing half-written
    finally:
        stop_process(converter)
