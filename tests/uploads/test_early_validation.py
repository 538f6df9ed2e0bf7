"""Validation before the body, in the form's words, every error at once (#19 item 6): option fields sent
before the file part are refused before the file's bytes are read, and POST /api/jobs/check/ answers
what an upload would get from its options, size and first and last MiB, before it is sent."""

import json
import socket
import uuid
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core import storage
from core.media.probe import NO_AUDIO
from tests.factories import DEFAULT_PASSWORD
from tests.support import media
from tests.support.pipeline import shared_service_env, stored_file_count
from tests.support.processes import web_server
from tests.support.uploads import upload
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]

MiB = 1024 * 1024
# Invalid in three fields at once, each named by the form's label in the sentences.
BAD_FIELDS = {"bitrate": "100", "vbr_quality": "12", "end": "soon"}


def _fields_first(client, path, fields, **kwargs):
    """POST the file with the option fields BEFORE the file part (the test client keeps dict order)."""
    with open(path, "rb") as handle:
        return client.post("/api/jobs/", {**fields, "file": handle}, format="multipart", **kwargs)


def _assert_every_bad_field_in_the_forms_words(body):
    assert body["code"] == "invalid_options"
    assert set(body["errors"]) == set(BAD_FIELDS)
    detail = body["detail"]
    for label in ("Constant bitrate: ", "VBR quality: ", "End at: "):
        assert label in detail, detail
    assert "vbr_quality" not in detail and "; bitrate:" not in detail and ". end:" not in detail


def test_option_fields_before_the_file_are_refused_at_once_in_the_forms_words(alice, media_files, settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    response = _fields_first(alice, media.make_media(media_files, "wav_pcm"), BAD_FIELDS)
    assert response.status_code == 400, response.content
    _assert_every_bad_field_in_the_forms_words(response.json())
    assert Job.objects.count() == 0 and list(tmp_path.iterdir()) == []


def test_a_page_session_gets_the_refusal_before_the_body_too(alice, media_files):
    """The session's CSRF check would parse the body with Django's own parser, spooling the file first."""
    page = APIClient(enforce_csrf_checks=True)
    page.force_login(alice.user)
    response = _fields_first(page, media.make_media(media_files, "wav_pcm"), BAD_FIELDS)
    assert response.status_code == 400, response.content
    _assert_every_bad_field_in_the_forms_words(response.json())
    # Valid options: the CSRF check still refuses a request without its token.
    assert _fields_first(page, media.make_media(media_files, "wav_pcm"), {"bitrate": "128"}).status_code == 403


def test_valid_fields_before_the_file_and_fields_after_it_still_work(alice, media_files):
    wav = media.make_media(media_files, "wav_pcm")
    accepted = _fields_first(alice, wav, {"bitrate": "96", "channels": "mono"})
    assert accepted.status_code == 202 and accepted.json()["options"]["bitrate"] == 96
    after = upload(alice, wav, **BAD_FIELDS)  # after the file: checked once it has arrived, as before
    assert after.status_code == 400 and set(after.json()["errors"]) == set(BAD_FIELDS)


def test_the_refusal_arrives_while_the_client_still_holds_back_the_body(alice, media_files, tmp_path):
    """Over a real socket to gunicorn: the fields, the file part's start and 2 MiB of it are sent of a
    body declared 200 MiB long; the 400 comes back while the rest is never sent, and nothing was spooled."""
    spool = tmp_path / "spool"
    spool.mkdir()
    token = APIClient().post(
        "/api/auth/token/", {"email": alice.user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    access = token.json()["access"]
    boundary = uuid.uuid4().hex
    start = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in BAD_FIELDS.items()
    )
    start += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mkv"\r\n'.encode()
    start += b"Content-Type: video/x-matroska\r\n\r\n" + b"\x1a\x45\xdf\xa3" + bytes(2 * MiB)
    declared = len(start) + 200 * MiB
    env = shared_service_env(tmp_path / "emails") | {"FILE_UPLOAD_TEMP_DIR": str(spool)}
    with web_server(tmp_path / "web.log", **env) as base_url:
        address = urlsplit(base_url)
        with socket.create_connection((address.hostname, address.port), timeout=60) as connection:
            head = (
                f"POST /api/jobs/ HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {access}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n"
            )
            connection.sendall(head.encode() + start)
            reply = b""
            while b"\r\n\r\n" not in reply or len(reply.split(b"\r\n\r\n", 1)[1]) < _content_length(reply):
                chunk = connection.recv(65536)  # the socket's timeout fails the test if no answer comes
                assert chunk, reply
                reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == b"400", reply[:2000]
    _assert_every_bad_field_in_the_forms_words(json.loads(rest.split(b"\r\n\r\n", 1)[1]))
    assert list(spool.iterdir()) == []
    assert Job.objects.count() == 0


def _content_length(reply: bytes) -> int:
    for line in reply.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# --- the preflight ----------------------------------------------------------------------------------------


def _check(client, path, **fields):
    """POST /api/jobs/check/ with the file's size, name, first and last MiB, and option fields."""
    data = path.read_bytes()
    parts = {
        "name": path.name,
        "size": str(len(data)),
        "head": SimpleUploadedFile("head", data[:MiB]),
        "tail": SimpleUploadedFile("tail", data[-MiB:]),
    }
    return client.post("/api/jobs/check/", {**fields, **parts}, format="multipart")


def _big(media_files, kind):
    path = media.make_media(media_files, kind, seconds=120.0)
    assert path.stat().st_size > 2 * MiB  # head and tail are not the whole file
    return path


def test_preflight_of_a_silent_mp4_with_its_moov_at_the_end_gives_the_uploads_no_audio_refusal(alice, media_files):
    path = _big(media_files, "mp4_no_audio")
    data = path.read_bytes()
    assert b"moov" not in data[:MiB] and b"moov" in data[-MiB:]  # the index is only in the tail
    response = _check(alice, path)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == "no_audio" and body["errors"] == {"file": [NO_AUDIO]} and body["ok"] is False
    real = upload(alice, path).json()
    assert (body["detail"], body["code"]) == (real["detail"], real["code"])
    assert Job.objects.count() == 0 and stored_file_count(storage.SOURCES) == 0


def test_preflight_of_an_mkv_says_every_option_error_at_once_as_the_upload_would(alice, media_files):
    path = _big(media_files, "mkv_vp9_opus")
    response = _check(alice, path, end="200", audio_track="1")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_options" and set(body["errors"]) == {"end", "audio_track"}
    assert "lasts 120" in body["errors"]["end"][0]
    assert body["errors"]["audio_track"] == ["This file has one audio track, number 0; choose 0 or leave it empty."]
    real = upload(alice, path, end="200", audio_track="1").json()
    assert (real["code"], real["errors"], real["detail"]) == (body["code"], body["errors"], body["detail"])
    assert "Audio track number: " in body["detail"] and "End at: " in body["detail"]
    assert "0 to 0" not in body["detail"]
    # Format errors and errors against the file, together.
    both = _check(alice, path, end="200", bitrate="100").json()
    assert set(both["errors"]) == {"end", "bitrate"}
    assert Job.objects.count() == 0 and stored_file_count(storage.SOURCES) == 0


def test_preflight_of_an_acceptable_file_gives_its_duration_and_audio_streams(alice, media_files):
    path = _big(media_files, "mp4_h264_aac_moov_end")
    response = _check(alice, path, bitrate="128", end="100")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["probed"] is True
    assert abs(body["duration"] - 120) < 0.5 and [s["codec"] for s in body["audio_streams"]] == ["aac"]
    assert Job.objects.count() == 0


def test_preflight_merges_size_quota_and_option_errors(alice, media_files, settings):
    path = _big(media_files, "mkv_vp9_opus")
    settings.MAX_UPLOAD_SIZE = 2 * MiB
    settings.QUOTA_QUEUED_JOBS_PER_USER = 1
    Job.objects.create(owner=alice.user, original_filename="waiting.mp4", size=1)
    response = _check(alice, path, **BAD_FIELDS)
    assert response.status_code == 413, response.content
    body = response.json()
    assert body["code"] == "too_large" and set(body["errors"]) == {"file", *BAD_FIELDS}
    assert len(body["errors"]["file"]) == 2 and "limit of 2.0 MB" in body["errors"]["file"][0]
    assert "jobs waiting or converting" in body["errors"]["file"][1]


def test_preflight_of_a_layout_it_cannot_read_leaves_the_decision_to_the_upload(alice, media_files):
    path = media.make_random_bytes(media_files, 3 * MiB)
    response = _check(alice, path)
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "probed": False, "duration": None, "audio_streams": []}


def test_preflight_of_a_small_whole_file_and_malformed_or_oversized_requests(alice, media_files):
    wav = media.make_media(media_files, "wav_pcm")  # smaller than the head: the whole file is probed
    response = _check(alice, wav, audio_track="2")
    assert response.status_code == 400 and response.json()["errors"]["audio_track"][0].startswith(
        "This file has one audio track, number 0"
    )
    assert alice.post("/api/jobs/check/", {"size": "12"}, format="multipart").status_code == 400
    too_big = {"size": "9", "head": SimpleUploadedFile("head", bytes(3 * MiB)), "tail": SimpleUploadedFile("t", b"")}
    assert alice.post("/api/jobs/check/", too_big, format="multipart").status_code == 413
    assert APIClient().post("/api/jobs/check/", {"size": "1"}, format="multipart").status_code == 401
    assert Job.objects.count() == 0
