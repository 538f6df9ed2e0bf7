"""Per-user quotas (stored bytes, jobs in progress) and retention, against real MariaDB/SQLite, SecantusDB, RabbitMQ, ffmpeg."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from conversion.management.commands.run_converter import Command as ConverterCommand
from conversion.services import job_convert
from core import storage
from tests.factories import user_create
from tests.support import media
from tests.support.concurrency import at_once
from tests.support.pipeline import stored_file_count, stored_files_and_orphan_chunks
from tests.support.uploads import upload
from uploads import selectors
from uploads.models import Job
from uploads.services import housekeeping, intake

pytestmark = [pytest.mark.django_db(transaction=True)]


def converted(client, path) -> Job:
    job_id = upload(client, path).json()["id"]
    assert job_convert(job_id=job_id) == "done"
    return Job.objects.get(id=job_id)


def test_stored_bytes_count_what_is_stored_not_what_was_uploaded(alice, media_files):
    video = media.make_media(media_files, "mp4_h264_aac_moov_end", seconds=20.0)
    assert selectors.user_stored_bytes(user=alice.user) == 0
    queued = Job.objects.get(id=upload(alice, video).json()["id"])
    kept = queued.source_size + queued.cover_size  # the extracted audio and the cover frame
    assert selectors.user_stored_bytes(user=alice.user) == kept
    assert kept == _bytes_in(storage.SOURCES) < queued.size / 3
    done = converted(alice, media.make_media(media_files, "wav_pcm"))  # an audio file is its own source
    assert done.source_size == done.size and done.cover_file_id == ""
    assert selectors.user_stored_bytes(user=alice.user) == kept + done.size + done.mp3_size
    alice.delete(f"/api/jobs/{queued.id}/")
    assert selectors.user_stored_bytes(user=alice.user) == done.size + done.mp3_size
    other = user_create(email="bob@example.com")
    assert selectors.user_stored_bytes(user=other) == 0


def test_storage_quota_refuses_with_429_a_sentence_and_retry_after(alice, media_files, settings):
    wav = media.make_media(media_files, "wav_pcm")
    done = converted(alice, wav)
    settings.QUOTA_BYTES_PER_USER = done.mp3_size + 2 * wav.stat().st_size - 1
    response = upload(alice, media.make_media(media_files, "wav_pcm", seconds=3.5))
    assert response.status_code == 429
    body = response.json()
    assert body["code"] == "storage_quota_exceeded" and "storage limit" in body["detail"]
    # Retry-After: when retention frees Alice's oldest file (7 days after it finished).
    assert 6 * 86400 < int(response["Retry-After"]) <= 7 * 86400
    assert Job.objects.count() == 1 and stored_files_and_orphan_chunks(storage.SOURCES) == (
        1,
        0,
    )  # only the first job's
    # Deleting a job makes room at once.
    assert alice.delete(f"/api/jobs/{done.id}/").status_code == 204
    assert upload(alice, wav).status_code == 202


def test_an_upload_from_a_user_at_the_quota_is_refused_before_its_body_is_read(alice, media_files, settings):
    """A user whose files already fill the quota is refused on the headers: a body that could not even
    be parsed still answers 429, not the 400 of a broken multipart body."""
    done = converted(alice, media.make_media(media_files, "wav_pcm"))
    settings.QUOTA_BYTES_PER_USER = selectors.user_stored_bytes(user=alice.user)
    assert done.mp3_size
    response = alice.generic(
        "POST",
        "/api/jobs/",
        b"x" * (64 * 1024 + 4096),
        content_type="multipart/form-data; boundary=abc",
    )
    assert response.status_code == 429 and response.json()["code"] == "storage_quota_exceeded"
    assert stored_file_count(storage.VIDEOS) == 0 and stored_files_and_orphan_chunks(storage.SOURCES) == (1, 0)


def test_an_upload_whose_audio_fits_the_quota_is_accepted_however_large_the_video(alice, media_files, settings):
    video = media.make_media(media_files, "mp4_h264_aac_moov_end", seconds=20.0)
    settings.QUOTA_BYTES_PER_USER = video.stat().st_size // 2
    response = upload(alice, video)
    assert response.status_code == 202, response.content
    assert selectors.user_stored_bytes(user=alice.user) < settings.QUOTA_BYTES_PER_USER


def test_jobs_in_progress_quota_applies_to_uploads_and_retries(alice, media_files, settings):
    settings.QUOTA_QUEUED_JOBS_PER_USER = 1
    wav = media.make_media(media_files, "wav_pcm")
    first = upload(alice, wav).json()["id"]
    refused = upload(alice, wav)
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_queued_jobs"
    assert int(refused["Retry-After"]) == intake.QUEUED_QUOTA_RETRY_AFTER_SECONDS
    # A failed job waits for nothing; retrying it while another is queued is over the limit too.
    failed = Job.objects.get(id=first)
    Job.objects.filter(id=first).update(status=Job.Status.FAILED, error="x", finished_at=timezone.now())
    second = upload(alice, wav).json()["id"]
    retry = alice.post(f"/api/jobs/{failed.id}/retry/")
    assert retry.status_code == 429 and retry["Retry-After"]
    assert Job.objects.get(id=first).status == Job.Status.FAILED
    # Other users are not limited by Alice's jobs.
    bob = APIClient()
    bob.force_authenticate(user_create(email="bob@example.com"))
    assert upload(bob, wav).status_code == 202
    assert Job.objects.get(id=second).status == Job.Status.QUEUED


def test_limits_of_zero_turn_quotas_off(alice, media_files, settings):
    settings.QUOTA_BYTES_PER_USER = 0
    settings.QUOTA_QUEUED_JOBS_PER_USER = 0
    wav = media.make_media(media_files, "wav_pcm")
    assert [upload(alice, wav).status_code for _ in range(3)] == [202, 202, 202]


def test_the_api_says_when_the_files_expire(alice, media_files, settings):
    wav = media.make_media(media_files, "wav_pcm")
    queued = upload(alice, wav).json()
    assert queued["expires_at"] is None
    done = converted(alice, wav)
    body = alice.get(f"/api/jobs/{done.id}/").json()
    assert body["expires_at"] == (done.finished_at + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    settings.RETENTION_DAYS = 0
    assert alice.get(f"/api/jobs/{done.id}/").json()["expires_at"] is None


def _age(job: Job, days: float) -> None:
    Job.objects.filter(id=job.id).update(finished_at=timezone.now() - timedelta(days=days))


def test_purge_expired_deletes_old_files_and_leaves_the_job_expired_with_a_sentence(alice, media_files, settings):
    settings.KEEP_SOURCE_VIDEOS = True  # so the old job holds a video, its audio, its cover and an MP3
    # Three different files: the same one again would reuse the first MP3 (dedup) instead of converting.
    old = converted(alice, media.make_media(media_files, "mp4_faststart"))
    old_mp3 = old.mp3_file_id
    recent = converted(alice, media.make_media(media_files, "mp4_faststart", seconds=4.0))
    failed_old = Job.objects.get(id=upload(alice, media.make_media(media_files, "wav_pcm", seconds=5.0)).json()["id"])
    Job.objects.filter(id=failed_old.id).update(status=Job.Status.FAILED, error="x", finished_at=timezone.now())
    _age(old, 7.5)
    _age(failed_old, 8)
    _age(recent, 6.5)
    output = StringIO()
    call_command("purge_expired", stdout=output)
    assert "expired 2 job(s)" in output.getvalue()
    old.refresh_from_db()
    assert old.status == Job.Status.EXPIRED and old.mp3_file_id == ""
    assert old.video_file_id == old.source_file_id == old.cover_file_id == ""
    assert "deleted" in old.error and "7 days" in old.error and old.error.endswith(".")
    assert not storage.file_exists(storage.MP3S, old_mp3)
    assert stored_files_and_orphan_chunks(storage.VIDEOS) == (1, 0)
    assert storage.file_exists(storage.VIDEOS, recent.video_file_id)
    assert stored_files_and_orphan_chunks(storage.SOURCES) == (2, 0)  # recent's audio and cover
    assert Job.objects.get(id=failed_old.id).status == Job.Status.EXPIRED
    assert Job.objects.get(id=recent.id).status == Job.Status.DONE
    assert storage.file_exists(storage.MP3S, recent.mp3_file_id)
    # The user sees why, and the freed bytes no longer count.
    download = alice.get(f"/api/jobs/{old.id}/mp3")
    assert download.status_code == 409 and download.json()["detail"] == old.error
    assert alice.get("/download", {"fid": old_mp3}).status_code == 404
    assert selectors.user_stored_bytes(user=alice.user) == (
        recent.mp3_size + recent.size + recent.source_size + recent.cover_size
    )
    # A second run finds nothing more to do.
    assert housekeeping.jobs_expire() == {"expired": 0, "files_deleted": 0}


def test_retention_of_zero_days_keeps_everything(alice, media_files, settings):
    done = converted(alice, media.make_media(media_files, "wav_pcm"))
    _age(done, 400)
    settings.RETENTION_DAYS = 0
    assert housekeeping.jobs_expire() == {"expired": 0, "files_deleted": 0}
    assert Job.objects.get(id=done.id).status == Job.Status.DONE


def test_the_converters_housekeeping_expires_old_jobs(alice, media_files):
    done = converted(alice, media.make_media(media_files, "wav_pcm"))
    _age(done, 8)
    ConverterCommand().housekeeping()  # what run_converter runs every SWEEP_INTERVAL_SECONDS
    assert Job.objects.get(id=done.id).status == Job.Status.EXPIRED
    assert stored_file_count(storage.MP3S) == 0


def test_two_parallel_uploads_cannot_both_squeeze_under_the_limit(alice, media_files, settings):
    """Both pass the early check (before ffprobe); the second check, under a lock on the user's row, lets one in."""
    settings.QUOTA_QUEUED_JOBS_PER_USER = 1
    wav = media.make_media(media_files, "wav_pcm")

    def send():
        client = APIClient()
        client.force_authenticate(alice.user)
        return upload(client, wav).status_code

    assert sorted(at_once(send, send)) == [202, 429]
    assert Job.objects.count() == 1
    assert stored_files_and_orphan_chunks(storage.SOURCES) == (1, 0)  # the refused upload's audio was deleted again


def _bytes_in(bucket: str) -> int:
    import pymongo
    from django.conf import settings as django_settings

    with pymongo.MongoClient(django_settings.MONGODB_URI) as client:
        files = client[django_settings.MONGODB_DB][f"{bucket}.files"]
        return sum(document["length"] for document in files.find({}, {"length": 1}))
