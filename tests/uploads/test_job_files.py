"""A job's files leave GridFS however the job goes: deleted through the API or the admin, with its owner,
two sharing jobs deleted at once, retention racing a delete. Real MariaDB (REPEATABLE READ) and SecantusDB."""

import pytest
from django.test import Client
from django.utils import timezone

from conversion.services import job_convert
from core import storage
from tests.factories import user_create
from tests.support import media
from tests.support.concurrency import at_once
from tests.support.pipeline import stored_files_and_orphan_chunks
from tests.support.uploads import upload_accepted
from uploads.models import Job
from uploads.services import deletion, housekeeping

pytestmark = [pytest.mark.django_db(transaction=True)]

BUCKETS = (storage.VIDEOS, storage.SOURCES, storage.MP3S)


def assert_nothing_stored():
    for bucket in BUCKETS:
        assert stored_files_and_orphan_chunks(bucket) == (0, 0), bucket


def shared_pair(client, path) -> tuple[Job, Job]:
    """A converted job and a re-upload that dedup gave the same MP3, audio source and cover."""
    first = upload_accepted(client, path)["id"]
    assert job_convert(job_id=first) == "done"
    second = Job.objects.get(id=upload_accepted(client, path)["id"])
    assert second.reused_from is not None
    return Job.objects.get(id=first), second


def admin_client() -> Client:
    client = Client()
    client.force_login(user_create(email="admin@example.com", is_staff=True, is_superuser=True))
    return client


def test_deleting_a_user_in_the_admin_deletes_their_files(alice, media_files):
    done = upload_accepted(alice, media.make_media(media_files, "mp4_faststart"))["id"]
    assert job_convert(job_id=done) == "done"
    upload_accepted(alice, media.make_media(media_files, "mkv_vp9_opus"))  # still queued
    response = admin_client().post(f"/admin/accounts/user/{alice.user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.exists()
    assert_nothing_stored()


@pytest.mark.parametrize("round_", range(3))
def test_two_jobs_sharing_files_deleted_at_the_same_moment_leave_nothing(alice, media_files, round_):
    first, second = shared_pair(alice, media.make_media(media_files, "mp4_faststart"))
    at_once(lambda: deletion.job_delete(job=first), lambda: deletion.job_delete(job=second))
    assert not Job.objects.exists()
    assert_nothing_stored()


def test_retention_racing_a_delete_of_the_job_sharing_its_files_leaves_nothing(alice, media_files):
    first, second = shared_pair(alice, media.make_media(media_files, "mp4_faststart"))
    Job.objects.filter(id=first.id).update(finished_at=timezone.now() - timezone.timedelta(days=30))
    at_once(housekeeping.jobs_expire, lambda: deletion.job_delete(job=second))
    housekeeping.jobs_expire()  # a later housekeeping run, as every converter makes them
    assert Job.objects.get(id=first.id).status == Job.Status.EXPIRED
    assert_nothing_stored()


def test_the_admin_retry_action_says_why_a_job_over_the_quota_or_without_its_store_stays_failed(
    alice, media_files, settings
):
    job_id = upload_accepted(alice, media.make_media(media_files, "wav_pcm"))["id"]
    Job.objects.filter(id=job_id).update(status=Job.Status.FAILED, error="It failed.")
    upload_accepted(alice, media.make_media(media_files, "wav_pcm", seconds=4.0))  # one job in progress
    settings.QUOTA_QUEUED_JOBS_PER_USER = 1
    client = admin_client()
    action = {"action": "retry_jobs", "_selected_action": [job_id]}
    response = client.post("/admin/uploads/job/", action, follow=True)
    assert response.status_code == 200
    assert "waiting or converting" in response.content.decode()
    settings.QUOTA_QUEUED_JOBS_PER_USER = 0
    reachable, settings.MONGODB_URI = settings.MONGODB_URI, "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"
    storage.reset_client()  # nothing listens on port 9
    try:
        response = client.post("/admin/uploads/job/", action, follow=True)
    finally:
        settings.MONGODB_URI = reachable
        storage.reset_client()
    assert response.status_code == 200 and "unreachable" in response.content.decode()
    assert Job.objects.get(id=job_id).status == Job.Status.FAILED
