"""Converting a job's stored audio again with other options, without a new upload (#19 item 4):
POST /api/jobs/{id}/retry/ (failed or cancelled job, same row) and POST /api/jobs/{id}/convert/ (a new job).
In-process against the real stores and ffmpeg; conversions run through the converter's own code."""

import subprocess
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conversion.services import job_convert
from core import storage
from core.media.ffmpeg import SILENT_AUDIO, ffmpeg_path
from tests.factories import user_create
from tests.support import media
from tests.support.pipeline import stored_file_count
from tests.support.uploads import upload_accepted
from uploads.models import Job
from uploads.services import housekeeping, leases

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def silent_wav(media_files):
    path = media_files / "silent-3s.wav"
    if not path.exists():
        media_files.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{uuid.uuid4().hex}.wav")
        subprocess.run(
            [ffmpeg_path(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "3"]
            + ["-c:a", "pcm_s16le", "-f", "wav", str(partial)],
            check=True,
        )
        partial.rename(path)
    return path


def _cancelled(client, job_id) -> Job:
    """The job cancelled by its owner while a converter holds it."""
    assert leases.job_claim_for_conversion(job_id=job_id, lease_owner=uuid.uuid4().hex) is not None
    response = client.delete(f"/api/jobs/{job_id}/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    return Job.objects.get(id=job_id)


def test_a_silent_wav_that_failed_normalizing_is_retried_without_normalization(alice, silent_wav):
    job_id = upload_accepted(alice, silent_wav, normalize="true")["id"]
    assert job_convert(job_id=job_id) == "failed"
    failed = Job.objects.get(id=job_id)
    assert failed.error == SILENT_AUDIO and "without normalization" in failed.error

    response = alice.post(f"/api/jobs/{job_id}/retry/", {"normalize": False}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] == job_id and body["status"] == "queued" and body["error"] == ""
    assert body["options"]["normalize"] is False and body["options"]["loudness_target"] is None
    assert job_convert(job_id=job_id) == "done"
    done = Job.objects.get(id=job_id)
    assert done.status == Job.Status.DONE and done.mp3_file_id and done.options_key != failed.options_key
    assert Job.objects.count() == 1


def test_a_retry_without_a_body_keeps_the_options(alice, silent_wav):
    job_id = upload_accepted(alice, silent_wav, normalize="true", bitrate="96")["id"]
    assert job_convert(job_id=job_id) == "failed"
    response = alice.post(f"/api/jobs/{job_id}/retry/")
    assert response.status_code == 202, response.content
    assert response.json()["options"] == Job.objects.get(id=job_id).options
    assert response.json()["options"]["normalize"] is True and response.json()["options"]["bitrate"] == 96


def test_a_cancelled_job_keeps_its_source_and_is_retried_with_form_fields(alice, media_files):
    video = media.make_media(media_files, "mp4_faststart")
    job_id = upload_accepted(alice, video)["id"]
    cancelled = _cancelled(alice, job_id)
    assert cancelled.source_file_id and cancelled.cover_file_id
    assert storage.file_exists(storage.SOURCES, cancelled.source_file_id)
    assert storage.file_exists(storage.SOURCES, cancelled.cover_file_id)

    response = alice.post(f"/api/jobs/{job_id}/retry/", {"bitrate": "96", "channels": "mono"})  # multipart
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "queued" and response.json()["options"]["bitrate"] == 96
    assert job_convert(job_id=job_id) == "done"
    assert Job.objects.get(id=job_id).options["channels"] == "mono"
    # Deleting it still removes everything.
    assert alice.delete(f"/api/jobs/{job_id}/").status_code == 204
    assert stored_file_count(storage.SOURCES) == 0 and stored_file_count(storage.MP3S) == 0


def test_a_done_job_converted_again_is_a_second_job_and_the_first_stays_done(alice, media_files):
    first_id = upload_accepted(alice, media.make_media(media_files, "mp4_faststart"))["id"]
    assert job_convert(job_id=first_id) == "done"
    first = Job.objects.get(id=first_id)

    response = alice.post(f"/api/jobs/{first_id}/convert/", {"bitrate": 64}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] != first_id and body["status"] == "queued" and body["reused_from"] is None
    assert body["options"]["bitrate"] == 64 and body["filename"] == first.original_filename
    second = Job.objects.get(id=body["id"])
    assert (second.owner, second.source_file_id, second.cover_file_id) == (
        first.owner,
        first.source_file_id,
        first.cover_file_id,
    )
    assert job_convert(job_id=second.id) == "done"
    second.refresh_from_db()
    assert Job.objects.get(id=first_id).status == Job.Status.DONE and second.mp3_file_id != first.mp3_file_id
    assert second.mp3_size < first.mp3_size / 2  # 64 kb/s against the default 192

    # The shared source and cover go with the last job that names them.
    assert alice.delete(f"/api/jobs/{first_id}/").status_code == 204
    assert storage.file_exists(storage.SOURCES, second.source_file_id)
    assert storage.file_exists(storage.SOURCES, second.cover_file_id)
    assert alice.delete(f"/api/jobs/{second.id}/").status_code == 204
    assert stored_file_count(storage.SOURCES) == 0 and stored_file_count(storage.MP3S) == 0


def test_converting_again_with_the_options_of_a_done_job_reuses_its_mp3(alice, media_files):
    first_id = upload_accepted(alice, media.make_media(media_files, "wav_pcm"), bitrate="96")["id"]
    assert job_convert(job_id=first_id) == "done"
    response = alice.post(f"/api/jobs/{first_id}/convert/", {"options": '{"bitrate": 96}'})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "done" and body["reused_from"] == first_id and body["id"] != first_id
    assert body["mp3_file_id"] == Job.objects.get(id=first_id).mp3_file_id


def test_a_failed_or_cancelled_job_is_converted_again_and_no_body_means_the_defaults(alice, silent_wav):
    failed_id = upload_accepted(alice, silent_wav, normalize="true", channels="mono")["id"]
    assert job_convert(job_id=failed_id) == "failed"
    response = alice.post(f"/api/jobs/{failed_id}/convert/")
    assert response.status_code == 202, response.content
    options = response.json()["options"]
    assert options["normalize"] is False and options["channels"] == "source"
    assert job_convert(job_id=response.json()["id"]) == "done"
    assert Job.objects.get(id=failed_id).status == Job.Status.FAILED

    cancelled_id = upload_accepted(alice, silent_wav, title="other")["id"]
    _cancelled(alice, cancelled_id)
    response = alice.post(f"/api/jobs/{cancelled_id}/convert/", {"vbr_quality": 5}, format="json")
    assert response.status_code == 202, response.content
    assert job_convert(job_id=response.json()["id"]) == "done"


def test_options_are_checked_like_an_uploads_every_error_at_once(alice, media_files):
    job_id = upload_accepted(alice, media.make_media(media_files, "mkv_two_languages"))["id"]
    assert job_convert(job_id=job_id) == "done"
    for path in ("retry", "convert"):
        response = alice.post(f"/api/jobs/{job_id}/{path}/", {"bitrate": "100", "vbr_quality": "12"}, format="json")
        assert response.status_code == 400 and response.json()["code"] == "invalid_options"
        assert set(response.json()["errors"]) == {"bitrate", "vbr_quality"}
    # Against what the upload probed: past its end and no such track, together.
    response = alice.post(f"/api/jobs/{job_id}/convert/", {"end": "10", "audio_track": "5"}, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) == {"end", "audio_track"}
    # The cover frame was taken at upload: another time cannot be honoured.
    response = alice.post(f"/api/jobs/{job_id}/convert/", {"cover_time": "2"}, format="json")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"cover_time"}
    response = alice.post(f"/api/jobs/{job_id}/convert/", ["bitrate"], format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_options"
    assert Job.objects.count() == 1


def test_another_users_job_is_404(alice, media_files):
    job_id = upload_accepted(alice, media.make_media(media_files, "wav_pcm"))["id"]
    assert job_convert(job_id=job_id) == "done"
    bob = APIClient()
    bob.force_authenticate(user_create(email="bob@example.com"))
    assert bob.post(f"/api/jobs/{job_id}/convert/", {"bitrate": 64}, format="json").status_code == 404
    assert bob.post(f"/api/jobs/{job_id}/retry/").status_code == 404
    assert Job.objects.count() == 1


def test_expired_active_and_sourceless_jobs_are_409_with_a_sentence(alice, media_files):
    wav = media.make_media(media_files, "wav_pcm")
    queued_id = upload_accepted(alice, wav)["id"]
    response = alice.post(f"/api/jobs/{queued_id}/convert/")
    assert response.status_code == 409 and "this one is queued" in response.json()["detail"]

    Job.objects.filter(id=queued_id).update(status=Job.Status.EXPIRED, error="expired", finished_at=timezone.now())
    for path in ("retry", "convert"):
        response = alice.post(f"/api/jobs/{queued_id}/{path}/")
        assert response.status_code == 409 and "upload the file again" in response.json()["detail"], path

    gone_id = upload_accepted(alice, wav, title="gone")["id"]
    assert job_convert(job_id=gone_id) == "done"
    storage.delete(storage.SOURCES, Job.objects.get(id=gone_id).source_file_id)
    response = alice.post(f"/api/jobs/{gone_id}/convert/", {"bitrate": 64}, format="json")
    assert response.status_code == 409 and "upload it again" in response.json()["detail"]
    assert Job.objects.count() == 2


def test_converting_again_respects_the_quotas(alice, media_files, settings):
    wav = media.make_media(media_files, "wav_pcm")
    done_id = upload_accepted(alice, wav)["id"]
    assert job_convert(job_id=done_id) == "done"
    settings.QUOTA_QUEUED_JOBS_PER_USER = 1
    upload_accepted(alice, wav, title="waiting")
    response = alice.post(f"/api/jobs/{done_id}/convert/", {"bitrate": 64}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "too_many_queued_jobs"
    assert response["Retry-After"]
    settings.QUOTA_QUEUED_JOBS_PER_USER = 0
    settings.QUOTA_BYTES_PER_USER = 1
    response = alice.post(f"/api/jobs/{done_id}/convert/", {"bitrate": 64}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "storage_quota_exceeded"
    assert Job.objects.count() == 2


def test_the_schema_documents_retry_and_convert(client):
    schema = client.get("/api/schema/?format=json").json()
    for path in ("/api/jobs/{job_id}/retry/", "/api/jobs/{job_id}/convert/"):
        operation = schema["paths"][path]["post"]
        assert "409" in operation["responses"] and "202" in operation["responses"]
        assert "application/json" in operation["requestBody"]["content"]


def test_retention_expires_a_cancelled_job_and_deletes_the_source_it_kept(alice, media_files, settings):
    settings.RETENTION_DAYS = 1
    job_id = upload_accepted(alice, media.make_media(media_files, "wav_pcm"))["id"]
    cancelled = _cancelled(alice, job_id)
    assert alice.get(f"/api/jobs/{job_id}/").json()["expires_at"] is not None
    Job.objects.filter(id=job_id).update(finished_at=timezone.now() - timedelta(days=2))
    assert housekeeping.jobs_expire()["expired"] == 1
    assert Job.objects.get(id=job_id).status == Job.Status.EXPIRED
    assert not storage.file_exists(storage.SOURCES, cancelled.source_file_id)
