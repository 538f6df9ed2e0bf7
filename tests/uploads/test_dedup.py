"""Dedup (issue #9): the same user uploading the same content with the same options gets the existing
MP3 without a second conversion; the MP3 is shared and deleted only with the last job naming it.
Real probe, SecantusDB, RabbitMQ and ffmpeg (job_convert); uploads through the API."""

import pytest
from rest_framework.test import APIClient

from conversion.services import job_convert
from core import broker, storage
from tests.factories import user_create
from tests.support import media
from tests.support.pipeline import stored_files_and_orphan_chunks
from tests.support.uploads import upload_accepted
from uploads import selectors
from uploads.models import Job
from uploads.services import housekeeping

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def converted(client, path, **options) -> dict:
    body = upload_accepted(client, path, **options)
    assert job_convert(job_id=body["id"]) == "done"
    return client.get(f"/api/jobs/{body['id']}/").json()


def download(client, job_id) -> bytes:
    response = client.get(f"/api/jobs/{job_id}/mp3")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def test_the_same_upload_with_the_same_options_reuses_the_mp3_without_converting(alice, media_files):
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path, bitrate="128")
    video_messages_before, mp3_messages_before = broker.queue_depth(broker.VIDEO), broker.queue_depth(broker.MP3)

    second = upload_accepted(alice, path, bitrate="128")

    assert second["status"] == "done" and second["reused_from"] == first["id"]
    assert second["mp3_file_id"] == first["mp3_file_id"] and second["mp3_size"] == first["mp3_size"]
    assert broker.queue_depth(broker.VIDEO) == video_messages_before, "nothing was queued for conversion"
    assert broker.queue_depth(broker.MP3) == mp3_messages_before + 1, "the user is still told it is ready"
    assert stored_files_and_orphan_chunks(storage.MP3S) == (1, 0)
    assert stored_files_and_orphan_chunks(storage.VIDEOS) == (0, 0), "the second copy of the video is not kept"
    assert download(alice, second["id"]) == download(alice, first["id"])
    assert job_convert(job_id=second["id"]) == "skipped"  # a stray message for it converts nothing


@pytest.mark.parametrize(
    ("first_options", "second_options", "other_file"),
    [({"bitrate": "128"}, {"bitrate": "96"}, False), ({}, {}, True)],
    ids=["other-options", "other-content"],
)
def test_other_options_or_other_content_convert_again(alice, media_files, first_options, second_options, other_file):
    path = media.make_media(media_files, "mp4_faststart")
    converted(alice, path, **first_options)
    second_path = media.make_media(media_files, "mkv_vp9_opus") if other_file else path
    second = upload_accepted(alice, second_path, **second_options)
    assert second["status"] == "queued" and second["reused_from"] is None


def test_another_users_identical_upload_is_not_reused(alice, media_files):
    path = media.make_media(media_files, "mp4_faststart")
    converted(alice, path)
    bob = client_for(user_create(email="bob@example.com"))
    assert upload_accepted(bob, path)["status"] == "queued"


@pytest.mark.parametrize("deleted", ["first", "second"])
def test_deleting_either_job_leaves_the_other_playable_and_the_last_deletes_the_mp3(alice, media_files, deleted):
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path)
    second = upload_accepted(alice, path)
    assert second["reused_from"] == first["id"]
    expected = download(alice, first["id"])
    gone, kept = (first, second) if deleted == "first" else (second, first)

    assert alice.delete(f"/api/jobs/{gone['id']}/").status_code == 204
    assert download(alice, kept["id"]) == expected
    assert stored_files_and_orphan_chunks(storage.MP3S) == (1, 0)
    assert housekeeping.storage_cleanup(older_than_seconds=0)["mp3s"] == 0, "cleanup must see the MP3 is still used"

    assert alice.delete(f"/api/jobs/{kept['id']}/").status_code == 204
    assert stored_files_and_orphan_chunks(storage.MP3S) == (0, 0)


def test_a_reused_job_after_the_first_was_deleted_reuses_nothing_and_converts(alice, media_files):
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path)
    assert alice.delete(f"/api/jobs/{first['id']}/").status_code == 204
    again = upload_accepted(alice, path)
    assert again["status"] == "queued" and again["reused_from"] is None


def test_quotas_count_a_shared_mp3_and_audio_source_once(alice, media_files):
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path)
    job = Job.objects.get(id=first["id"])
    alone = selectors.user_stored_bytes(user=job.owner)
    stored = (storage.SOURCES, storage.MP3S)
    files_before = [stored_files_and_orphan_chunks(bucket) for bucket in stored]
    upload_accepted(alice, path)
    upload_accepted(alice, path)
    assert Job.objects.filter(owner=job.owner).count() == 3
    assert alone == job.mp3_size + job.source_size + job.cover_size
    assert selectors.user_stored_bytes(user=job.owner) == alone
    # A re-upload stores nothing of its own: it shares the first job's MP3, audio source and cover.
    assert [stored_files_and_orphan_chunks(bucket) for bucket in stored] == files_before
    reused = Job.objects.exclude(id=job.id).first()
    assert (reused.source_file_id, reused.cover_file_id) == (job.source_file_id, job.cover_file_id)


def test_retention_expiring_the_first_job_keeps_the_mp3_of_a_later_reuse(alice, media_files, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.RETENTION_DAYS = 7
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path)
    second = upload_accepted(alice, path)
    Job.objects.filter(id=first["id"]).update(finished_at=timezone.now() - timedelta(days=8))

    assert housekeeping.jobs_expire()["expired"] == 1
    assert Job.objects.get(id=first["id"]).status == "expired"
    assert download(alice, second["id"])  # still there
    Job.objects.filter(id=second["id"]).update(finished_at=timezone.now() - timedelta(days=8))
    housekeeping.jobs_expire()
    for bucket in (storage.SOURCES, storage.MP3S):
        assert stored_files_and_orphan_chunks(bucket) == (0, 0)
