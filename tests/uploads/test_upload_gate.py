"""What an upload's headers already decide is answered before its body is read, whoever signs it in
(a Bearer token, or the browser's session, whose CSRF check would otherwise parse the whole body);
and a re-upload that declares its SHA-256 (RFC 9530 Repr-Digest) is served by dedup without its body."""

import base64
import hashlib

import pytest
from django.test import Client

from conversion.services import job_convert
from core import storage
from tests.factories import DEFAULT_PASSWORD
from tests.support import media
from tests.support.pipeline import stored_file_count
from tests.support.uploads import upload
from uploads import selectors
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]

# A body no parser can make sense of: an answer other than "broken multipart" proves it was not read.
UNREADABLE = b"x" * (64 * 1024 + 4096)


def session_client(user) -> Client:
    """The browser's way in: signed in with a session cookie, CSRF enforced as for a real page."""
    client = Client(enforce_csrf_checks=True)
    assert client.login(email=user.email, password=DEFAULT_PASSWORD)
    client.get("/")  # sets the csrftoken cookie, as the page does
    return client


def post_unreadable(client, **headers):
    csrf = client.cookies["csrftoken"].value if "csrftoken" in client.cookies else ""
    return client.generic(
        "POST",
        "/api/jobs/",
        UNREADABLE,
        content_type="multipart/form-data; boundary=abc",
        HTTP_X_CSRFTOKEN=csrf,
        **headers,
    )


def digest_of(path) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode() + ":"


def test_a_session_upload_over_the_storage_quota_is_refused_before_its_body_is_read(alice, media_files, settings):
    assert job_convert(job_id=upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]) == "done"
    settings.QUOTA_BYTES_PER_USER = selectors.user_stored_bytes(user=alice.user)
    response = post_unreadable(session_client(alice.user))
    assert response.status_code == 429, response.content
    assert response.json()["code"] == "storage_quota_exceeded" and int(response["Retry-After"]) > 0


def test_a_session_upload_over_the_queued_jobs_quota_is_refused_before_its_body_is_read(alice, media_files, settings):
    upload(alice, media.make_media(media_files, "wav_pcm"))
    settings.QUOTA_QUEUED_JOBS_PER_USER = 1
    response = post_unreadable(session_client(alice.user))
    assert response.status_code == 429 and response.json()["code"] == "too_many_queued_jobs"


def test_a_session_upload_declared_too_large_is_refused_before_its_body_is_read(alice, settings):
    settings.MAX_UPLOAD_SIZE = 1024
    response = post_unreadable(session_client(alice.user))
    assert response.status_code == 413


def test_a_session_upload_without_its_csrf_token_is_still_refused(alice, media_files):
    client = session_client(alice.user)
    wav = media.make_media(media_files, "wav_pcm")
    with open(wav, "rb") as handle:
        response = client.post("/api/jobs/", {"file": handle})  # no X-CSRFToken header
    assert response.status_code == 403 and not Job.objects.exists()


def test_a_re_upload_declared_by_its_digest_gets_its_mp3_without_its_body_even_over_the_quota(
    alice, media_files, settings
):
    wav = media.make_media(media_files, "wav_pcm")
    first = upload(alice, wav).json()["id"]
    assert job_convert(job_id=first) == "done"
    settings.QUOTA_BYTES_PER_USER = selectors.user_stored_bytes(user=alice.user)  # full
    stored_before = stored_file_count(storage.SOURCES) + stored_file_count(storage.MP3S)
    response = alice.generic(
        "POST",
        "/api/jobs/",
        UNREADABLE,
        content_type="multipart/form-data; boundary=abc",
        HTTP_REPR_DIGEST=digest_of(wav),
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "done" and body["reused_from"] == first and body["filename"] == wav.name
    assert stored_file_count(storage.SOURCES) + stored_file_count(storage.MP3S) == stored_before
    # Options in the query select which earlier conversion is meant: none with these options exists.
    other = alice.generic(
        "POST",
        "/api/jobs/?bitrate=96",
        UNREADABLE,
        content_type="multipart/form-data; boundary=abc",
        HTTP_REPR_DIGEST=digest_of(wav),
    )
    assert other.status_code == 429  # so the body would be read, and the full quota refuses it first


def test_the_digest_must_match_the_file_and_options_go_in_the_query(alice, media_files):
    wav = media.make_media(media_files, "wav_pcm")
    other = media.make_media(media_files, "wav_pcm", seconds=4.0)
    mismatch = upload(alice, wav, headers={"Repr-Digest": digest_of(other)})
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "digest_mismatch"
    in_body = upload(alice, wav, bitrate="96", headers={"Repr-Digest": digest_of(wav)})
    assert in_body.status_code == 400 and "URL query" in in_body.json()["detail"]
    in_query = upload(alice, wav, url="/api/jobs/?bitrate=96", headers={"Repr-Digest": digest_of(wav)})
    assert in_query.status_code == 202 and in_query.json()["options"]["bitrate"] == 96
    assert not Job.objects.filter(status="done").exists()
