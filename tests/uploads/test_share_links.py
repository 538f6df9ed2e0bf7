"""Share links (issue #16): the owner makes a link to one finished MP3 with an expiry, lists and revokes it;
anyone with the link plays and downloads (Range too) without signing in, and sees nothing else of the
owner's. Expired and revoked links answer 410, a made-up or altered token and a deleted or expired job 404.
Real conversions, MariaDB and SecantusDB; the pages through Django's test client."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conversion.services import job_convert
from core import storage
from tests.support import media
from tests.support.uploads import upload_accepted
from uploads.models import Job, ShareLink
from uploads.services import deletion

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def done_job(alice, media_files) -> Job:
    job_id = upload_accepted(alice, media.make_media(media_files, "wav_pcm"), name="board-meeting.wav")["id"]
    assert job_convert(job_id=job_id) == "done"
    return Job.objects.get(id=job_id)


def make_share(alice, job, **body) -> dict:
    response = alice.post(f"/api/jobs/{job.id}/shares/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def stored_mp3(job) -> bytes:
    with storage.open_file(storage.MP3S, job.mp3_file_id) as stored:
        return stored.read()


def test_a_share_link_plays_and_downloads_without_signing_in_and_shows_nothing_else(alice, done_job):
    before = timezone.now()
    share = make_share(alice, done_job)
    assert share["state"] == "active" and share["revoked_at"] is None
    hours = (timezone.datetime.fromisoformat(share["expires_at"]) - before).total_seconds() / 3600
    assert 23.9 < hours <= 24.01  # SHARE_LINK_HOURS
    token = share["url"].rsplit("/", 1)[1]
    assert len(token) == 43 and not ShareLink.objects.filter(token_digest=token).exists()
    assert token not in str(list(ShareLink.objects.values()))  # stored only as a digest

    visitor = Client()  # no session, no token
    page = visitor.get(path_of(share["url"]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "board-meeting" in body and 'preload="none"' in body and "Download MP3" in body
    for private in (alice.user.email, str(done_job.id), done_job.mp3_file_id):
        assert private not in body
    assert "default-src 'self'" in page["Content-Security-Policy"] and "<script>" not in body and "style=" not in body
    assert page["Cache-Control"] == "no-store"

    mp3 = stored_mp3(done_job)
    full = visitor.get(path_of(share["url"]) + "/mp3")
    assert full.status_code == 200 and full["Content-Type"] == "audio/mpeg"
    assert b"".join(full.streaming_content) == mp3
    part = visitor.get(path_of(share["url"]) + "/mp3", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 100-1099/{len(mp3)}"
    assert b"".join(part.streaming_content) == mp3[100:1100]


def test_the_owner_chooses_the_expiry_lists_and_revokes_and_a_revoked_link_answers_410(alice, done_job):
    share = make_share(alice, done_job, expires_in_hours=3)
    other = make_share(alice, done_job)
    expires = timezone.datetime.fromisoformat(share["expires_at"])
    assert timedelta(hours=2, minutes=59) < expires - timezone.now() <= timedelta(hours=3)
    revoked = alice.delete(f"/api/jobs/{done_job.id}/shares/{share['id']}/")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked" and revoked.json()["url"] is None
    listing = alice.get(f"/api/jobs/{done_job.id}/shares/").json()["results"]
    assert [(s["id"], s["state"], s["url"] is None) for s in listing] == [
        (other["id"], "active", False),
        (share["id"], "revoked", True),
    ]
    visitor = Client()
    page = visitor.get(path_of(share["url"]))
    assert page.status_code == 410 and "turned off by the person who shared it" in page.content.decode()
    assert visitor.get(path_of(share["url"]) + "/mp3").status_code == 410
    assert visitor.get(path_of(other["url"])).status_code == 200  # the other link still works


def test_an_expired_link_answers_410_and_says_so(alice, done_job):
    share = make_share(alice, done_job, expires_in_hours=1)
    ShareLink.objects.filter(id=share["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = Client().get(path_of(share["url"]))
    assert page.status_code == 410 and "This share link expired on" in page.content.decode()
    assert Client().get(path_of(share["url"]) + "/mp3", headers={"Range": "bytes=0-9"}).status_code == 410
    assert alice.get(f"/api/jobs/{done_job.id}/shares/").json()["results"][0]["state"] == "expired"


def test_a_tampered_or_made_up_token_answers_404(alice, done_job):
    url = path_of(make_share(alice, done_job)["url"])
    last = url[-1]
    tampered = url[:-1] + ("A" if last != "A" else "B")
    for path in (tampered, tampered + "/mp3", url[:-1], url + "x", "/s/" + "A" * 43, "/s/../admin"):
        response = Client().get(path)
        assert response.status_code == 404, path


def test_a_link_answers_404_once_its_job_expired_or_was_deleted(alice, done_job):
    url = path_of(make_share(alice, done_job)["url"])
    Job.objects.filter(id=done_job.id).update(status=Job.Status.EXPIRED)
    page = Client().get(url)
    assert page.status_code == 404 and "no longer here" in page.content.decode()
    Job.objects.filter(id=done_job.id).update(status=Job.Status.DONE)
    alice.user.is_active = False  # a deactivated account shares nothing
    alice.user.save(update_fields=["is_active"])
    assert Client().get(url).status_code == 404
    deletion.job_delete(job=Job.objects.get(id=done_job.id))
    assert Client().get(url).status_code == 404 and Client().get(url + "/mp3").status_code == 404


def test_the_api_refuses_what_cannot_be_shared_with_a_sentence(alice, done_job, media_files):
    queued = upload_accepted(alice, media.make_media(media_files, "mp4_faststart"))["id"]
    refused = alice.post(f"/api/jobs/{queued}/shares/", {}, format="json")
    assert refused.status_code == 409 and "Wait until it is done" in refused.json()["detail"]
    for hours in (0, -1, 100_000, "soon"):
        bad = alice.post(f"/api/jobs/{done_job.id}/shares/", {"expires_in_hours": hours}, format="json")
        assert bad.status_code == 400 and "from 1 to 720 hours" in bad.json()["detail"], hours
    assert alice.get("/api/jobs/not-a-uuid/shares/").status_code == 400
    assert alice.delete(f"/api/jobs/{done_job.id}/shares/not-a-uuid/").status_code == 400
    assert alice.delete(f"/api/jobs/{done_job.id}/shares/{done_job.id}/").status_code == 404
    # Another user sees neither the job nor its links.
    from rest_framework.test import APIClient

    from tests.factories import user_create

    bob = APIClient()
    bob.force_authenticate(user_create(email="bob@example.com"))
    assert bob.get(f"/api/jobs/{done_job.id}/shares/").status_code == 404
    assert bob.post(f"/api/jobs/{done_job.id}/shares/", {}, format="json").status_code == 404
    assert ShareLink.objects.count() == 0
