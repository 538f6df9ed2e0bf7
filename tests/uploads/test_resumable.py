"""Resumable uploads (tus 1.0) under /api/uploads/: the protocol's answers, the checks made at creation
before any byte is stored, the lock that keeps two PATCHes apart, and expiry through cleanup_storage."""

import base64
import hashlib
import threading
import time

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from conversion.services import job_convert
from core import storage
from tests.factories import user_create
from tests.support import media
from tests.support.pipeline import stored_file_count
from tests.support.processes import wait_until
from tests.support.uploads import upload as plain_upload
from uploads import selectors
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
CHUNK = "application/offset+octet-stream"


def metadata(**pairs) -> str:
    return ",".join(f"{key} {base64.b64encode(str(value).encode()).decode()}" for key, value in pairs.items())


def create(client, length: int, **pairs):
    return client.generic(
        "POST", "/api/uploads/", b"", HTTP_UPLOAD_LENGTH=str(length), HTTP_UPLOAD_METADATA=metadata(**pairs), **TUS
    )


def patch(client, url: str, data: bytes, offset: int, **headers):
    return client.generic("PATCH", url, data, content_type=CHUNK, HTTP_UPLOAD_OFFSET=str(offset), **TUS, **headers)


def offset_of(client, url: str) -> int:
    response = client.head(url, **TUS)
    assert response.status_code == 200, response.content
    return int(response["Upload-Offset"])


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data, usedforsecurity=False).digest()).decode()


def test_options_advertise_the_protocol(client, settings):
    response = client.options("/api/uploads/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) >= {
        "creation",
        "creation-with-upload",
        "termination",
        "checksum",
        "expiration",
    }
    assert int(response["Tus-Max-Size"]) == settings.MAX_UPLOAD_SIZE
    assert "sha1" in response["Tus-Checksum-Algorithm"].split(",")


def test_an_upload_in_chunks_becomes_a_job_and_names_it(alice, media_files):
    video = media.make_media(media_files, "mkv_vp9_opus").read_bytes()
    created = create(alice, len(video), filename="talk.mkv", preset="podcast")
    assert created.status_code == 201, created.content
    url = created["Location"]
    assert "Upload-Expires" in created
    half = len(video) // 2
    first = patch(alice, url, video[:half], 0, HTTP_UPLOAD_CHECKSUM=sha1_header(video[:half]))
    assert first.status_code == 204 and first["Upload-Offset"] == str(half)
    assert offset_of(alice, url) == half
    last = patch(alice, url, video[half:], half)
    assert last.status_code == 200, last.content
    job = Job.objects.get(id=last.json()["id"])
    assert last["Content-Location"] == f"/api/jobs/{job.id}/"
    assert job.original_filename == "talk.mkv" and job.options["channels"] == "mono"  # the podcast preset
    assert job.content_sha256 == hashlib.sha256(video).hexdigest()
    assert stored_file_count(storage.TUS_UPLOADS) == 1  # the record naming the job; its bytes are gone
    assert alice.get(url).json()["job"]["id"] == str(job.id)
    assert job_convert(job_id=job.id) == "done"


def test_a_wrong_offset_gets_409_and_a_wrong_checksum_460_with_the_offset_unmoved(alice):
    url = create(alice, 1000)["Location"]
    assert patch(alice, url, b"a" * 300, 0).status_code == 204
    conflict = patch(alice, url, b"b" * 100, 100)
    assert conflict.status_code == 409 and conflict["Upload-Offset"] == "300"
    damaged = patch(alice, url, b"c" * 400, 300, HTTP_UPLOAD_CHECKSUM=sha1_header(b"d" * 400))
    assert damaged.status_code == 460, damaged.content
    assert "Upload-Checksum" in damaged.json()["detail"]
    assert offset_of(alice, url) == 300
    assert patch(alice, url, b"c" * 400, 300, HTTP_UPLOAD_CHECKSUM=sha1_header(b"c" * 400)).status_code == 204
    assert offset_of(alice, url) == 700
    assert patch(alice, url, b"e" * 400, 700).status_code == 413  # past the declared length


def test_over_the_limits_at_creation_nothing_is_stored(alice, media_files, settings):
    settings.MAX_UPLOAD_SIZE = 1000
    too_large = create(alice, 1001)
    assert too_large.status_code == 413 and "larger than this server's limit" in too_large.json()["detail"]
    settings.MAX_UPLOAD_SIZE = 10**9
    assert job_convert(job_id=plain_upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]) == "done"
    settings.QUOTA_BYTES_PER_USER = selectors.user_stored_bytes(user=alice.user)
    over = create(alice, 1000)
    assert over.status_code == 429 and over.json()["code"] == "storage_quota_exceeded" and int(over["Retry-After"]) > 0
    settings.QUOTA_BYTES_PER_USER = 0
    settings.QUOTA_QUEUED_JOBS_PER_USER = 2
    assert create(alice, 1000).status_code == 201  # an upload in progress counts as a job to come
    queued = create(alice, 1000)
    assert queued.status_code == 201
    third = create(alice, 1000)
    assert third.status_code == 429 and third.json()["code"] == "too_many_queued_jobs"
    bad_options = create(alice, 1000, bitrate="7")
    assert bad_options.status_code == 400 and bad_options.json()["code"] == "invalid_options"
    assert bad_options.json()["errors"]["bitrate"]
    assert stored_file_count(storage.TUS_UPLOADS) == 2  # the two accepted ones, empty


def test_a_declared_sha256_that_dedup_serves_gets_the_job_at_once(alice, media_files):
    wav = media.make_media(media_files, "wav_pcm")
    assert job_convert(job_id=plain_upload(alice, wav).json()["id"]) == "done"
    sha256 = hashlib.sha256(wav.read_bytes()).hexdigest()
    created = create(alice, wav.stat().st_size, filename=wav.name, sha256=sha256)
    assert created.status_code == 201, created.content
    job = created.json()
    assert job["status"] == "done" and job["reused_from"]
    assert created["Upload-Offset"] == str(wav.stat().st_size)
    # A client that sends the bytes anyway learns the job, and that nothing more is needed.
    again = patch(alice, created["Location"], b"x" * 10, 0)
    assert again.status_code == 200 and again.json()["id"] == job["id"]


def test_a_file_refused_once_it_arrived_gets_the_uploads_sentence_and_leaves_nothing(alice, media_files):
    silent = media.make_media(media_files, "mp4_no_audio").read_bytes()
    created = alice.generic(
        "POST", "/api/uploads/", silent, content_type=CHUNK, HTTP_UPLOAD_LENGTH=str(len(silent)), **TUS
    )  # creation-with-upload: all of it at once
    assert created.status_code == 422 and created.json()["code"] == "no_audio", created.content
    assert stored_file_count(storage.TUS_UPLOADS) == 0 and not Job.objects.exists()


def test_a_second_patch_while_one_writes_gets_423(alice):
    url = create(alice, 1000)["Location"]
    upload_id = url.rsplit("/", 1)[1]
    started, release = threading.Event(), threading.Event()

    def slow_read(size):
        started.set()
        release.wait(30)
        return b"s" * 100

    writer = threading.Thread(
        target=storage.partial_append,
        args=(upload_id, slow_read),
        kwargs={"offset": 0, "size": 100, "lease_seconds": 60, "expires": storage._now().replace(year=2100)},
    )
    writer.start()
    try:
        assert started.wait(30)
        assert patch(alice, url, b"t" * 100, 0).status_code == 423
    finally:
        release.set()
        writer.join()
    assert offset_of(alice, url) == 100
    assert patch(alice, url, b"t" * 100, 0).status_code == 409


def test_termination_and_another_users_upload(alice):
    bob_client = APIClient()
    bob_client.force_authenticate(user_create(email="bob@example.com"))
    url = create(alice, 1000)["Location"]
    assert patch(alice, url, b"a" * 500, 0).status_code == 204
    assert bob_client.head(url, **TUS).status_code == 404
    assert bob_client.generic("DELETE", url, **TUS).status_code == 404
    assert alice.generic("DELETE", url, **TUS).status_code == 204
    assert alice.head(url, **TUS).status_code == 404
    assert stored_file_count(storage.TUS_UPLOADS) == 0


def test_a_request_without_tus_resumable_gets_412(alice):
    response = alice.generic("POST", "/api/uploads/", b"", HTTP_UPLOAD_LENGTH="10")
    assert response.status_code == 412 and response["Tus-Version"] == "1.0.0"


def test_cleanup_removes_expired_uploads_and_never_one_still_arriving(alice, settings):
    settings.TUS_UPLOAD_EXPIRY_SECONDS = 2
    doomed = create(alice, 10**6)["Location"]
    assert patch(alice, doomed, b"a" * (300 * 1024), 0).status_code == 204
    settings.TUS_UPLOAD_EXPIRY_SECONDS = 3600
    living = create(alice, 10**6)["Location"]
    assert patch(alice, living, b"b" * (600 * 1024), 0).status_code == 204
    expires = time.time() + 2
    wait_until(lambda: time.time() > expires + 0.5, timeout=10)
    assert alice.head(doomed, **TUS).status_code == 404  # expired: gone for the client at once
    call_command("cleanup_storage", "--older-than", "0")
    assert storage.partial_chunk_count(doomed.rsplit("/", 1)[1]) == 0
    assert offset_of(alice, living) == 600 * 1024
    assert storage.partial_chunk_count(living.rsplit("/", 1)[1]) == 3
