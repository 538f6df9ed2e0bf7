"""Issue #6: hostile and malformed requests, in one place, against the real stack.

Each case is sent as a client would send it (real JWTs from the login endpoint, real multipart
bodies, real media made by ffmpeg) to the real MariaDB/SQLite, SecantusDB, RabbitMQ and ffmpeg,
and asserts the exact status of the README's status-code table, a `detail` sentence, and that
nothing was stored (no job row, no GridFS file, no queued message) or leaked (nothing of the other
user's job in the body). The cases that need separate server processes (chunked uploads through
gunicorn, the login throttle shared by two processes) are at the end.
"""

import http.client
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import jwt
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversion.services import job_convert
from core import broker, storage
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support import media
from tests.support.http import basic
from tests.support.http import request as http_request
from tests.support.pipeline import shared_service_env, stored_file_count
from tests.support.processes import PROJECT_DIR, web_server
from tests.support.uploads import upload
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]

BOB_FILENAME = "bobs-private-interview.wav"


@dataclass
class World:
    """Two users with real tokens; Bob owns a finished job (video converted, MP3 stored) and a queued one."""

    alice: APIClient
    alice_user: object
    alice_tokens: dict
    bob_user: object
    bob_done: Job
    bob_queued: Job
    media_dir: object
    extra: dict = field(default_factory=dict)

    def anonymous(self) -> APIClient:
        return APIClient()

    def bearer(self, token: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client


def _client_for(user) -> tuple[APIClient, dict]:
    tokens = (
        APIClient().post("/api/auth/token/", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json").json()
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client, tokens


@pytest.fixture
def world(mongodb, rabbitmq, media_files) -> World:
    alice_user = user_create(email="alice@example.com")
    bob_user = user_create(email="bob@example.com")
    alice, alice_tokens = _client_for(alice_user)
    bob, _ = _client_for(bob_user)
    wav = media.make_media(media_files, "wav_pcm")
    done_id = upload(bob, wav, name=BOB_FILENAME).json()["id"]
    assert job_convert(job_id=done_id) == "done"  # the real conversion, as the converter runs it
    queued_id = upload(bob, wav, name=BOB_FILENAME).json()["id"]
    return World(
        alice=alice,
        alice_user=alice_user,
        alice_tokens=alice_tokens,
        bob_user=bob_user,
        bob_done=Job.objects.get(id=done_id),
        bob_queued=Job.objects.get(id=queued_id),
        media_dir=media_files,
    )


def _state() -> dict:
    return {
        "jobs": sorted((str(job.id), job.status, job.error) for job in Job.objects.all()),
        "videos": stored_file_count(storage.VIDEOS),
        "sources": stored_file_count(storage.SOURCES),
        "mp3s": stored_file_count(storage.MP3S),
        "queued": broker.queue_depth(broker.VIDEO),
    }


def _claims(user, **overrides) -> dict:
    now = int(time.time())
    claims = {"token_type": "access", "exp": now + 300, "iat": now, "jti": uuid.uuid4().hex, "user_id": str(user.pk)}
    claims.update(overrides)
    return claims


def _multipart_with_fields(count: int) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n' for i in range(count)]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\nRIFF\r\n"
    )
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


# --- the catalog ----------------------------------------------------------------------------------------
# A case may prepare the world first (its own jobs, a logout, a lower limit); what is compared is the
# state right before and right after the hostile request itself.


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    send: Callable[[World, object], object]
    prepare: Callable[[World], object] | None = None


def _upload_of(make: Callable, *, name: str | None = None) -> Callable[[World, object], object]:
    return lambda w, _: upload(w.alice, make(w.media_dir), name=name)


def _alice_job(w: World, **updates) -> Job:
    job_id = upload(w.alice, media.make_media(w.media_dir, "wav_pcm")).json()["id"]
    if updates:
        Job.objects.filter(id=job_id).update(**updates)
    return Job.objects.get(id=job_id)


def _alice_job_converted_then_deleted(w: World) -> Job:
    job = _alice_job(w)
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    assert w.alice.delete(f"/api/jobs/{job.id}/").status_code == 204
    return job


def _lower_size_limit(w: World):
    path = media.make_media(w.media_dir, "mp4_h264_aac_moov_end")
    settings.MAX_UPLOAD_SIZE = path.stat().st_size - 1  # the pytest-django `settings` fixture restores it
    return path


def _two_files(w: World, _):
    wav = media.make_media(w.media_dir, "wav_pcm").read_bytes()
    files = [SimpleUploadedFile("a.wav", wav), SimpleUploadedFile("b.wav", wav)]
    return w.alice.post("/api/jobs/", {"file": files}, format="multipart")


def _many_fields(w: World, _):
    body, content_type = _multipart_with_fields(1001)
    return w.alice.generic("POST", "/api/jobs/", body, content_type=content_type)


def _fill_byte_quota(w: World):
    wav = media.make_media(w.media_dir, "wav_pcm")
    settings.QUOTA_BYTES_PER_USER = wav.stat().st_size * 3 // 2
    assert upload(w.alice, wav).status_code == 202
    return wav


def _fill_queued_quota(w: World):
    wav = media.make_media(w.media_dir, "wav_pcm")
    settings.QUOTA_QUEUED_JOBS_PER_USER = 2
    for _ in range(2):
        assert upload(w.alice, wav).status_code == 202
    return wav


def _deactivate_alice(w: World):
    w.alice_user.is_active = False
    w.alice_user.save()


def _log_out_alice(w: World):
    refresh = w.alice_tokens["refresh"]
    assert w.anonymous().post("/api/auth/logout/", {"refresh": refresh}, format="json").status_code == 200
    return refresh


def _rotate_alices_refresh(w: World):
    refresh = w.alice_tokens["refresh"]
    assert w.anonymous().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json").status_code == 200
    return refresh


def _refresh(w: World, refresh: str):
    return w.anonymous().post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")


def _jwt(key, algorithm, **claims) -> Callable[[World, object], object]:
    return lambda w, _: w.bearer(jwt.encode(_claims(w.alice_user, **claims), key, algorithm)).get("/api/jobs/")


def _php_named_mp4_php(directory):
    return media.make_disguised(directory, "x.mp4.php", b"<?php system($_GET['cmd']); ?>\n")


def _upload_with_options(w: World, options: dict):
    return upload(w.alice, media.make_media(w.media_dir, "wav_pcm"), name="a.wav", options=json.dumps(options))


def _alice_job_converted(w: World) -> Job:
    job = _alice_job(w)
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    return job


# Numbers no float can hold (OverflowError) and headers whose digits int() refuses to read (over 4300).
HUGE_NUMBER = 10**400
HUGE_DIGITS = "9" * 5000

CATALOG = [
    # 400: malformed requests
    Case("no-file", 400, lambda w, _: w.alice.post("/api/jobs/", {}, format="multipart")),
    *[
        Case(f"option-{name}-of-400-digits", 400, lambda w, _, name=name: _upload_with_options(w, {name: HUGE_NUMBER}))
        for name in ("start", "end", "cover_time", "loudness_target", "true_peak", "bitrate", "audio_track")
    ],
    Case(
        "option-start-of-400-digits-as-a-form-field",
        400,
        lambda w, _: w.alice.post(
            "/api/jobs/",
            {"file": SimpleUploadedFile("a.wav", b"RIFF"), "start": str(HUGE_NUMBER)},
            format="multipart",
        ),
    ),
    Case("two-files", 400, _two_files),
    Case(
        "two-files-original-upload",
        400,
        lambda w, _: w.alice.post(
            "/upload", {"a": SimpleUploadedFile("a.wav", b"1"), "b": SimpleUploadedFile("b.wav", b"2")}
        ),
    ),
    Case("1001-form-fields", 400, _many_fields),
    Case(
        "multipart-without-boundary",
        400,
        lambda w, _: w.alice.generic("POST", "/api/jobs/", b"--x\r\n\r\nfile", content_type="multipart/form-data"),
    ),
    Case(
        "broken-multipart",
        400,
        lambda w, _: w.alice.generic(
            "POST", "/api/jobs/", b"--abc\r\nnot a part", content_type="multipart/form-data; boundary=abc"
        ),
    ),
    Case("malformed-job-id-detail", 400, lambda w, _: w.alice.get("/api/jobs/abc/")),
    Case("malformed-job-id-delete", 400, lambda w, _: w.alice.delete("/api/jobs/abc/")),
    Case("malformed-job-id-retry", 400, lambda w, _: w.alice.post("/api/jobs/abc/retry/")),
    Case("malformed-job-id-mp3", 400, lambda w, _: w.alice.get("/api/jobs/abc/mp3")),
    Case("sql-in-job-id", 400, lambda w, _: w.alice.get("/api/jobs/1' OR '1'='1/")),
    Case("fid-abc", 400, lambda w, _: w.alice.get("/download", {"fid": "abc"})),
    Case("fid-mongo-operator", 400, lambda w, _: w.alice.get("/download", {"fid": '{"$ne": null}'})),
    Case("fid-mongo-operator-in-name", 400, lambda w, _: w.alice.get("/download?fid[$ne]=x")),
    Case("unknown-status-filter", 400, lambda w, _: w.alice.get("/api/jobs/", {"status": "$where"})),
    # 401: missing or bad credentials
    Case("no-credentials", 401, lambda w, _: w.anonymous().get("/api/jobs/")),
    Case("no-credentials-original-upload", 401, lambda w, _: w.anonymous().post("/upload")),
    Case("jwt-alg-none", 401, _jwt(None, "none")),
    Case("jwt-signed-with-another-key", 401, _jwt("another-key-" * 4, "HS256")),
    Case("jwt-wrong-algorithm", 401, _jwt(settings.JWT_SIGNING_KEY, "HS512")),
    Case("jwt-expired", 401, _jwt(settings.JWT_SIGNING_KEY, "HS256", exp=int(time.time()) - 10)),
    Case("jwt-unknown-user", 401, _jwt(settings.JWT_SIGNING_KEY, "HS256", user_id="999999")),
    Case("refresh-token-as-access", 401, lambda w, _: w.bearer(w.alice_tokens["refresh"]).get("/api/jobs/")),
    Case("refresh-token-blacklisted", 401, _refresh, prepare=_log_out_alice),
    Case("refresh-token-reused-after-rotation", 401, _refresh, prepare=_rotate_alices_refresh),
    Case("deactivated-user", 401, lambda w, _: w.alice.get("/api/jobs/"), prepare=_deactivate_alice),
    Case("garbage-bearer", 401, lambda w, _: w.bearer("not.a.token").get("/api/jobs/")),
    # 404: another user's or an unknown id, on every job endpoint and the original download
    Case("other-users-job-detail", 404, lambda w, _: w.alice.get(f"/api/jobs/{w.bob_done.id}/")),
    Case("other-users-job-delete", 404, lambda w, _: w.alice.delete(f"/api/jobs/{w.bob_done.id}/")),
    Case("other-users-queued-job-delete", 404, lambda w, _: w.alice.delete(f"/api/jobs/{w.bob_queued.id}/")),
    Case("other-users-job-retry", 404, lambda w, _: w.alice.post(f"/api/jobs/{w.bob_done.id}/retry/")),
    Case("other-users-job-mp3", 404, lambda w, _: w.alice.get(f"/api/jobs/{w.bob_done.id}/mp3")),
    Case("other-users-fid", 404, lambda w, _: w.alice.get("/download", {"fid": w.bob_done.mp3_file_id})),
    Case("unknown-job-id", 404, lambda w, _: w.alice.get(f"/api/jobs/{uuid.uuid4()}/")),
    Case(
        "source-file-id-as-fid",
        404,
        lambda w, job: w.alice.get("/download", {"fid": job.source_file_id}),
        prepare=_alice_job,
    ),
    Case(
        "download-after-delete",
        404,
        lambda w, job: w.alice.get(f"/api/jobs/{job.id}/mp3"),
        prepare=_alice_job_converted_then_deleted,
    ),
    Case(
        "fid-after-delete",
        404,
        lambda w, job: w.alice.get("/download", {"fid": job.mp3_file_id}),
        prepare=_alice_job_converted_then_deleted,
    ),
    # 409: the job's state does not allow the action
    Case("download-before-done", 409, lambda w, job: w.alice.get(f"/api/jobs/{job.id}/mp3"), prepare=_alice_job),
    Case("retry-of-a-queued-job", 409, lambda w, job: w.alice.post(f"/api/jobs/{job.id}/retry/"), prepare=_alice_job),
    Case(
        "retry-of-a-done-job",
        409,
        lambda w, job: w.alice.post(f"/api/jobs/{job.id}/retry/"),
        prepare=lambda w: _alice_job(w, status=Job.Status.DONE),
    ),
    # 413: over the size limit
    Case("over-size-limit", 413, lambda w, path: upload(w.alice, path), prepare=_lower_size_limit),
    Case(
        "over-size-by-content-length",
        413,
        lambda w, _: w.alice.generic(
            "POST", "/api/jobs/", b"x" * 10, content_type="multipart/form-data; boundary=abc", CONTENT_LENGTH="9" * 12
        ),
    ),
    # 422: not audio/video, no audio track, a container outside the allow-list
    Case(
        "zero-byte-file",
        422,
        lambda w, _: w.alice.post("/api/jobs/", {"file": SimpleUploadedFile("empty.mp4", b"")}, format="multipart"),
    ),
    Case("php-script-named-mp4-php", 422, _upload_of(_php_named_mp4_php)),
    Case("png-renamed-mp4", 422, _upload_of(media.make_png_as_mp4)),
    Case("elf-renamed-mp4", 422, _upload_of(media.make_elf_as_mp4)),
    Case("png-html-zip-polyglot", 422, _upload_of(media.make_polyglot)),
    Case("truncated-mp4", 422, _upload_of(lambda d: media.make_truncated(d, "mp4_h264_aac_moov_end"))),
    Case("video-without-audio", 422, _upload_of(lambda d: media.make_media(d, "mp4_no_audio"))),
    Case("hls-playlist", 422, _upload_of(media.make_hls_playlist)),
    Case("ffconcat-script", 422, _upload_of(media.make_concat_script)),
    # 429: over quota
    Case("over-storage-quota", 429, lambda w, wav: upload(w.alice, wav), prepare=_fill_byte_quota),
    Case("over-queued-jobs-quota", 429, lambda w, wav: upload(w.alice, wav), prepare=_fill_queued_quota),
]


@pytest.mark.parametrize("case", CATALOG, ids=[case.id for case in CATALOG])
def test_hostile_request_gets_its_status_and_stores_and_leaks_nothing(world, settings, case):
    prepared = case.prepare(world) if case.prepare else None
    before = _state()
    response = case.send(world, prepared)
    after = _state()
    assert response.status_code == case.status, response.content[:500]
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith("."), detail
    body = response.content.decode(errors="replace")
    for secret in (str(world.bob_done.id), str(world.bob_queued.id), BOB_FILENAME, world.bob_user.email):
        assert secret not in body, f"the answer leaks {secret!r}"
    assert after == before, "the refused request changed what is stored"
    if case.status == 429:
        assert int(response["Retry-After"]) > 0


def test_catalog_covers_every_status_of_the_table():
    assert {case.status for case in CATALOG} == {400, 401, 404, 409, 413, 422, 429}
    assert len(CATALOG) >= 25


# --- hostile file names: accepted as media, but the name is display text only -----------------------------

HOSTILE_NAMES = [
    pytest.param("x.mp4\x00.php", "x.mp4.php", id="nul-in-name"),
    pytest.param("../../etc/passwd.wav", "passwd.wav", id="path-traversal"),
    pytest.param("..\\..\\windows\\win.ini.wav", "win.ini.wav", id="windows-path"),
    pytest.param("a\r\nSet-Cookie: stolen=1\r\n.wav", "aSet-Cookie: stolen=1.wav", id="crlf-in-name"),
    pytest.param("\u202egnp.wav", "gnp.wav", id="bidi-override"),
]


def _upload_named_raw(client, path, name: str):
    """The name as RFC 2231 `filename*` (percent-encoded UTF-8): how a client gets CR, LF or NUL through to the server."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''{quote(name, safe='')}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.generic("POST", "/api/jobs/", body, content_type=f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize(("name", "shown"), HOSTILE_NAMES)
def test_hostile_file_names_are_display_text_and_never_reach_a_header(world, name, shown):
    response = _upload_named_raw(world.alice, media.make_media(world.media_dir, "wav_pcm"), name)
    assert response.status_code == 202, response.content
    job = Job.objects.get(id=response.json()["id"])
    assert response.json()["filename"] == job.original_filename == shown
    with storage.open_file(storage.SOURCES, job.source_file_id) as stored:
        assert stored.filename == shown  # GridFS holds the display name too, never a path
    assert job_convert(job_id=str(job.id)) == "done"
    download = world.alice.get(f"/api/jobs/{job.id}/mp3")
    assert download.status_code == 200
    disposition = download["Content-Disposition"]
    assert disposition.startswith("attachment; ") and not {"\r", "\n", "\x00"} & set(disposition)
    assert "stolen" not in download.cookies and "Set-Cookie" not in download.headers
    assert download["Content-Type"] == "audio/mpeg" and download["X-Content-Type-Options"] == "nosniff"


def test_a_10000_character_name_is_capped_and_keeps_its_extension(world):
    response = upload(world.alice, media.make_media(world.media_dir, "wav_pcm"), name="a" * 10_000 + ".wav")
    assert response.status_code == 202, response.content
    filename = response.json()["filename"]
    assert len(filename) <= 200 and filename.endswith(".wav")


def test_a_non_ascii_name_is_downloaded_with_rfc6266_filename_star(world):
    response = upload(world.alice, media.make_media(world.media_dir, "wav_pcm"), name="Überraschung 音楽.wav")
    job_id = response.json()["id"]
    assert job_convert(job_id=job_id) == "done"
    download = world.alice.get(f"/api/jobs/{job_id}/mp3")
    assert download["Content-Disposition"] == (
        "attachment; filename=\"_berraschung __.mp3\"; filename*=UTF-8''%C3%9Cberraschung%20%E9%9F%B3%E6%A5%BD.mp3"
    )
    assert download["Content-Type"] == "audio/mpeg" and download["X-Content-Type-Options"] == "nosniff"


# --- through real server processes ------------------------------------------------------------------------


def test_an_upload_without_content_length_is_400_and_stores_nothing(world, tmp_path):
    """Chunked transfer encoding through gunicorn: Django would read no body at all, so it is refused up front."""
    wav = media.make_media(world.media_dir, "wav_pcm").read_bytes()
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
        + wav
        + f"\r\n--{boundary}--\r\n".encode()
    )
    before = _state()
    with web_server(tmp_path / "web.log", **shared_service_env(tmp_path / "emails")) as base_url:
        address = urlsplit(base_url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        connection.request(
            "POST",
            "/api/jobs/",
            body=iter([body[:1000], body[1000:]]),
            headers={
                "Authorization": f"Bearer {world.alice_tokens['access']}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            encode_chunked=True,
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
        connection.close()
    assert response.status == 400, answer
    assert answer["code"] == "length_required" and answer["detail"].endswith(".")
    assert _state() == before


def _post_json(url: str, body: dict, headers: dict | None = None):
    return http_request(
        "POST", url, body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


def test_eleventh_wrong_password_over_two_processes_is_429_even_with_forged_forwarded_for(tmp_path):
    """The failure count lives in the database, so two gunicorn processes share it; a forged
    X-Forwarded-For (no trusted proxy configured) neither resets it nor moves it to another address."""
    user_create(email="target@example.com")
    with web_server(tmp_path / "web1.log") as first, web_server(tmp_path / "web2.log") as second:
        for attempt in range(10):
            server = (first, second)[attempt % 2]
            reply = _post_json(
                f"{server}/api/auth/token/",
                {"email": "target@example.com", "password": f"guess {attempt}"},
                {"X-Forwarded-For": f"203.0.113.{attempt}"},
            )
            assert reply.status == 401
        reply = _post_json(
            f"{second}/api/auth/token/",
            {"email": "target@example.com", "password": "guess"},
            {"X-Forwarded-For": "198.51.100.1"},
        )
        assert reply.status == 429
        assert int(reply.headers["Retry-After"]) > 0
        assert "Try again" in reply.json()["detail"]
        # Not even the right password gets through while throttled, on either process or login path.
        right = _post_json(f"{first}/api/auth/token/", {"email": "target@example.com", "password": DEFAULT_PASSWORD})
        assert right.status == 429
        login = http_request(
            "POST", f"{first}/login", headers={"Authorization": basic("target@example.com", DEFAULT_PASSWORD)}
        )
        assert login.status == 429


def test_the_readme_status_table_lists_every_status_the_catalog_asserts():
    text = (PROJECT_DIR / "README.md").read_text()
    table = text.split("<!-- status-table -->", 1)[1].split("\n\n", 1)[0]
    documented = {int(code) for code in re.findall(r"^\| (\d{3}) \|", table, re.M)}
    assert {case.status for case in CATALOG} <= documented
    assert documented >= {400, 401, 404, 409, 413, 422, 429, 503}


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"bytes={HUGE_DIGITS}-", 416),  # starts past the end of any file
        (f"bytes=0-{HUGE_DIGITS}", 206),  # to the end
        (f"bytes=-{HUGE_DIGITS}", 206),  # the last N bytes, N past the size: the whole file
        (f"bytes={HUGE_DIGITS}-{HUGE_DIGITS}", 416),
    ],
    ids=["start", "end", "suffix", "both"],
)
def test_range_headers_with_thousands_of_digits_answer_by_the_rfc_on_both_download_paths(world, header, status):
    job = _alice_job_converted(world)
    for response in (
        world.alice.get(f"/api/jobs/{job.id}/mp3", HTTP_RANGE=header),
        world.alice.get("/download", {"fid": job.mp3_file_id}, HTTP_RANGE=header),
    ):
        assert response.status_code == status
        if status == 416:
            assert response["Content-Range"] == f"bytes */{job.mp3_size}"
        else:
            assert response["Content-Range"] == f"bytes 0-{job.mp3_size - 1}/{job.mp3_size}"
            assert len(b"".join(response.streaming_content)) == job.mp3_size


def test_a_client_that_drops_mid_upload_leaves_no_chunks_and_no_temp_file(world, tmp_path):
    """20 MiB of a declared 100 MiB, then the connection is cut: nothing reaches GridFS while a body
    arrives (only what a conversion needs is stored, after probing), and the spooled part is removed."""
    import socket

    spool = tmp_path / "spool"
    spool.mkdir()
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode()
    )
    declared = 100 * 1024 * 1024
    before = _state()
    env = {**shared_service_env(tmp_path / "emails"), "FILE_UPLOAD_TEMP_DIR": str(spool)}
    with web_server(tmp_path / "web.log", **env) as base_url:
        address = urlsplit(base_url)
        with socket.create_connection((address.hostname, address.port), timeout=30) as connection:
            connection.sendall(
                (
                    f"POST /api/jobs/ HTTP/1.1\r\nHost: {address.hostname}\r\n"
                    f"Authorization: Bearer {world.alice_tokens['access']}\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n"
                ).encode()
                + head
            )
            chunk = b"\0" * (1024 * 1024)
            for _ in range(20):
                connection.sendall(chunk)
            assert wait_until_spooled(spool)  # the server was receiving it
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # Closed with a reset: the worker's read fails and the request ends.
        assert _wait(lambda: not list(spool.iterdir()), 30), list(spool.iterdir())
        assert http_request("GET", f"{base_url}/healthz").status == 200
    assert _state() == before  # files and chunks of every bucket, job rows, queue


def wait_until_spooled(spool) -> bool:
    return _wait(lambda: any(path.stat().st_size > 1024 * 1024 for path in spool.iterdir()), 30)


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
