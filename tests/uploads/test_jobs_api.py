"""The jobs API in-process, against real MariaDB/SQLite, SecantusDB, RabbitMQ and ffmpeg (no worker running)."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core import broker, storage
from tests.factories import user_create
from tests.support import audio_checks, media
from tests.support.pipeline import stored_file_count, stored_files_and_orphan_chunks
from tests.support.uploads import upload
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]


def assert_nothing_stored():
    assert Job.objects.count() == 0
    for bucket in (storage.VIDEOS, storage.SOURCES, storage.MP3S):
        assert stored_files_and_orphan_chunks(bucket) == (0, 0), bucket
    assert broker.queue_depth(broker.VIDEO) == 0


def test_upload_stores_its_audio_and_cover_not_the_video_and_queues_the_job(alice, media_files, tmp_path):
    path = media.make_media(media_files, "mp4_h264_aac_moov_end", seconds=20.0)
    response = upload(alice, path)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["filename"] == path.name
    assert body["links"]["self"].endswith(f"/api/jobs/{body['id']}/")
    assert body["mp3_file_id"] == "" and body["links"]["mp3"] is None
    job = Job.objects.get(id=body["id"])
    assert job.owner == alice.user and job.audio_codec == "aac" and job.video_codec == "h264"
    assert abs(job.duration - 20.0) < 0.2 and job.size == path.stat().st_size
    assert job.video_file_id == "" and stored_file_count(storage.VIDEOS) == 0
    # The audio, stream-copied: a fraction of the upload, decoding to exactly the upload's samples.
    source = tmp_path / "source"
    assert storage.copy_to_path(storage.SOURCES, job.source_file_id, source) == job.source_size
    assert job.source_size < job.size / 3
    assert audio_checks.decoded_audio_md5(source) == audio_checks.decoded_audio_md5(path)
    cover = tmp_path / "cover.jpg"
    assert storage.copy_to_path(storage.SOURCES, job.cover_file_id, cover) == job.cover_size
    assert audio_checks.image_size(cover.read_bytes(), tmp_path) == (160, 120)
    assert broker.queue_depth(broker.VIDEO) == 1


@pytest.mark.parametrize(
    ("make", "status", "phrase"),
    [
        (lambda d: media.make_media(d, "mp4_no_audio"), 422, "no audio track"),
        (lambda d: media.make_random_bytes(d, 64 * 1024), 422, "not"),
        (lambda d: media.make_hls_playlist(d), 422, "playlist"),
        (lambda d: media.make_concat_script(d), 422, ""),
        (lambda d: media.make_avi_with_embedded_playlist(d, media.make_media(d, "ts_h264_aac")), 422, "playlist"),
    ],
    ids=["no-audio", "random-bytes", "hls-playlist", "concat-script", "avi-embedded-playlist"],
)
def test_refused_media_is_422_with_a_sentence_and_nothing_is_stored(alice, media_files, make, status, phrase):
    response = upload(alice, make(media_files))
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    assert phrase.lower() in detail.lower() and detail.endswith(".")
    assert_nothing_stored()


def test_zero_byte_file_is_422(alice):
    response = alice.post("/api/jobs/", {"file": SimpleUploadedFile("empty.mp4", b"")}, format="multipart")
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]
    assert_nothing_stored()


def test_oversize_is_413_and_nothing_is_stored(alice, media_files, settings):
    path = media.make_media(media_files, "mp4_h264_aac_moov_end")
    settings.MAX_UPLOAD_SIZE = path.stat().st_size - 1
    response = upload(alice, path)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert_nothing_stored()


def test_oversize_by_content_length_is_refused_before_the_body_is_read(alice, settings):
    settings.MAX_UPLOAD_SIZE = 1024
    response = alice.generic(
        "POST",
        "/api/jobs/",
        b"x" * 10,
        content_type="multipart/form-data; boundary=abc",
        CONTENT_LENGTH=str(10 * 1024**2),
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "files",
    [{}, {"file": [io.BytesIO(b"a"), io.BytesIO(b"b")]}, {"other": io.BytesIO(b"a")}],
    ids=["no-file", "two-files", "wrong-field"],
)
def test_malformed_upload_requests_are_400(alice, files):
    for name, value in list(files.items()):
        if isinstance(value, list):
            files[name] = [SimpleUploadedFile(f"{i}.mp4", v.getvalue()) for i, v in enumerate(value)]
        else:
            files[name] = SimpleUploadedFile("a.mp4", value.getvalue())
    response = alice.post("/api/jobs/", files, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"].endswith(".")
    assert_nothing_stored()


def test_broken_multipart_is_400(alice):
    response = alice.generic(
        "POST", "/api/jobs/", b"--abc\r\nnot a part", content_type="multipart/form-data; boundary=abc"
    )
    assert response.status_code == 400
    response = alice.generic("POST", "/api/jobs/", b"garbage", content_type="multipart/form-data")
    assert response.status_code == 400


def test_filename_is_display_text_only(alice, media_files):
    path = media.make_media(media_files, "wav_pcm")
    with open(path, "rb") as handle:
        content = handle.read()
    evil = SimpleUploadedFile("../../etc/\x00pass\nwd\u202e.wav", content, content_type="audio/wav")
    response = alice.post("/api/jobs/", {"file": evil}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["filename"] == "passwd.wav"


def test_list_is_newest_first_paginated_and_filtered(alice, media_files):
    path = media.make_media(media_files, "wav_pcm")
    ids = [upload(alice, path).json()["id"] for _ in range(3)]
    Job.objects.filter(id=ids[0]).update(status=Job.Status.FAILED, error="x")
    listing = alice.get("/api/jobs/").json()
    assert listing["count"] == 3
    assert [job["id"] for job in listing["results"]] == list(reversed(ids))
    failed = alice.get("/api/jobs/?status=failed").json()
    assert [job["id"] for job in failed["results"]] == [ids[0]]
    assert alice.get("/api/jobs/?status=nonsense").status_code == 400


def test_download_before_done_is_409_and_retry_of_a_queued_job_is_409(alice, media_files):
    job_id = upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]
    assert alice.get(f"/api/jobs/{job_id}/mp3").status_code == 409
    response = alice.post(f"/api/jobs/{job_id}/retry/")
    assert response.status_code == 409 and "failed" in response.json()["detail"]


def test_another_users_job_is_404_everywhere(alice, media_files):
    job_id = upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]
    Job.objects.filter(id=job_id).update(status=Job.Status.DONE, mp3_file_id=f"mp3-{job_id}")
    bob = APIClient()
    bob.force_authenticate(user_create(email="bob@example.com"))
    assert bob.get(f"/api/jobs/{job_id}/").status_code == 404
    assert bob.get(f"/api/jobs/{job_id}/mp3").status_code == 404
    assert bob.post(f"/api/jobs/{job_id}/retry/").status_code == 404
    assert bob.delete(f"/api/jobs/{job_id}/").status_code == 404
    assert bob.get(f"/download?fid=mp3-{job_id}").status_code == 404
    assert bob.get("/api/jobs/").json()["count"] == 0
    assert Job.objects.filter(id=job_id).exists()


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "1' OR '1'='1", "x" * 300])
def test_malformed_ids_are_400(alice, bad_id):
    assert alice.get(f"/api/jobs/{bad_id}/").status_code == 400
    assert alice.get("/download", {"fid": bad_id}).status_code == 400


def test_unknown_ids_are_404(alice):
    assert alice.get("/api/jobs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert alice.get("/download", {"fid": "mp3-00000000-0000-0000-0000-000000000000"}).status_code == 404


def test_delete_of_a_queued_job_removes_its_files(alice, media_files):
    job_id = upload(alice, media.make_media(media_files, "mp4_faststart")).json()["id"]
    assert stored_files_and_orphan_chunks(storage.SOURCES) == (2, 0)  # the audio and the cover
    assert alice.delete(f"/api/jobs/{job_id}/").status_code == 204
    assert not Job.objects.filter(id=job_id).exists()
    assert stored_files_and_orphan_chunks(storage.SOURCES) == (0, 0)


def test_unauthenticated_requests_are_401(mongodb, rabbitmq):
    client = APIClient()
    assert client.get("/api/jobs/").status_code == 401
    assert client.post("/upload").status_code == 401
    assert client.get("/download?fid=x").status_code == 401


def test_original_upload_accepts_any_field_name_and_answers_200(alice, media_files):
    response = upload(alice, media.make_media(media_files, "wav_pcm"), field="whatever", url="/upload")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued"


def test_original_upload_needs_exactly_one_file(alice):
    assert alice.post("/upload", {}, format="multipart").status_code == 400
    two = {"a": SimpleUploadedFile("a.wav", b"1"), "b": SimpleUploadedFile("b.wav", b"2")}
    assert alice.post("/upload", two, format="multipart").status_code == 400


def test_original_download_needs_fid(alice):
    response = alice.get("/download")
    assert response.status_code == 400 and "fid" in response.json()["detail"]


def test_openapi_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_download_by_fid_serves_attempt_ids_and_the_ids_mp3s_had_before(alice, media_files):
    from conversion.services import job_convert

    job_id = upload(alice, media.make_media(media_files, "wav_pcm")).json()["id"]
    assert job_convert(job_id=job_id) == "done"
    job = Job.objects.get(id=job_id)
    assert job.mp3_file_id.startswith(f"mp3-{job.id}-")  # this attempt's own file
    assert alice.get("/download", {"fid": job.mp3_file_id}).status_code == 200
    # A job converted before attempt ids named its MP3 "mp3-<job id>".
    legacy_id = f"mp3-{job.id}"
    with storage.open_file(storage.MP3S, job.mp3_file_id) as current:
        storage.save_stream(storage.MP3S, current, filename="old.mp3", content_type="audio/mpeg", file_id=legacy_id)
    Job.objects.filter(id=job.id).update(mp3_file_id=legacy_id)
    download = alice.get("/download", {"fid": legacy_id})
    assert download.status_code == 200 and download["Content-Type"] == "audio/mpeg"
