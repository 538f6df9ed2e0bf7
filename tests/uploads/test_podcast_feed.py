"""The private podcast feed (issue #16): RSS 2.0 with the iTunes namespace of a user's finished MP3s, read by
feedparser and podcastparser (what podcast apps and gPodder use) with every field; enclosures that download
and seek (Range) with no auth header; 404 for the feed and every enclosure once the token is revoked or
renewed, or the job is gone; 304 for a second poll. Real conversions, MariaDB and SecantusDB."""

import io
import json
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime

import feedparser
import podcastparser
import pytest
from django.test import Client

from conversion.services import job_convert
from core import storage
from tests.support import media
from tests.support.uploads import upload_accepted
from uploads.models import Job, PodcastFeed
from uploads.services import deletion

pytestmark = [pytest.mark.django_db(transaction=True)]

ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
PODCAST = "{https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md}"


@pytest.fixture
def jobs(alice, media_files) -> dict[str, Job]:
    """A video with a cover frame and three chapters, titled by its owner; and a WAV with neither."""
    video = upload_accepted(alice, media.make_media_with_chapters(media_files), title="Quarterly talk")["id"]
    audio = upload_accepted(alice, media.make_media(media_files, "wav_pcm"), name="voice memo.wav")["id"]
    for job_id in (video, audio):
        assert job_convert(job_id=job_id) == "done"
    return {"video": Job.objects.get(id=video), "audio": Job.objects.get(id=audio)}


@pytest.fixture
def memo(alice, media_files) -> Job:
    """One converted WAV, for the tests that need an episode of any kind."""
    job_id = upload_accepted(alice, media.make_media(media_files, "wav_pcm"), name="voice memo.wav")["id"]
    assert job_convert(job_id=job_id) == "done"
    return Job.objects.get(id=job_id)


def feed_url(alice) -> str:
    response = alice.post("/api/feed/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["active"] and data["url"].endswith(".xml")
    return data["url"]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def fetch(url: str, **headers):
    response = Client().get(path_of(url), headers=headers)  # no session, no Authorization header
    if hasattr(response, "streaming_content"):
        response.body = b"".join(response.streaming_content)
    else:
        response.body = response.content
    return response


def stored_mp3(job) -> bytes:
    with storage.open_file(storage.MP3S, job.mp3_file_id) as stored:
        return stored.read()


def test_the_feed_parses_in_feedparser_and_podcastparser_with_every_field(alice, jobs):
    video, audio = jobs["video"], jobs["audio"]
    assert video.mp3_chapters and [c["title"] for c in video.mp3_chapters] == ["Part 1", "Part 2", "Part 3"]
    assert audio.mp3_chapters == []
    url = feed_url(alice)
    assert alice.get("/api/feed/").json()["url"] == url  # the same address again (derived, not stored)
    response = fetch(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/rss+xml")

    parsed = feedparser.parse(response.body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20" and parsed.feed.title
    by_title = {entry.title: entry for entry in parsed.entries}
    assert set(by_title) == {"Quarterly talk", "voice memo"}  # the ID3 title, else the file name
    for job, entry in ((video, by_title["Quarterly talk"]), (audio, by_title["voice memo"])):
        assert entry.id == f"urn:uuid:{job.id}" and entry.guidislink is False
        (enclosure,) = entry.enclosures
        assert enclosure.type == "audio/mpeg" and int(enclosure.length) == job.mp3_size == len(stored_mp3(job))
        whole = round(job.mp3_duration)
        assert entry.itunes_duration == f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
        assert parsedate_to_datetime(entry.published) == job.finished_at.replace(microsecond=0)
    assert by_title["Quarterly talk"].image.href.endswith(".jpg")
    assert "image" not in by_title["voice memo"]

    podcast = podcastparser.parse(url, io.BytesIO(response.body))
    episodes = {episode["title"]: episode for episode in podcast["episodes"]}
    talk, memo = episodes["Quarterly talk"], episodes["voice memo"]
    assert talk["guid"] == f"urn:uuid:{video.id}" and memo["guid"] == f"urn:uuid:{audio.id}"
    assert talk["enclosures"][0]["file_size"] == video.mp3_size
    assert talk["enclosures"][0]["mime_type"] == "audio/mpeg"
    assert talk["total_time"] == round(video.mp3_duration)
    assert talk["published"] == int(video.finished_at.timestamp())
    assert talk["episode_art_url"] == by_title["Quarterly talk"].image.href
    assert talk["chapters_json_url"].endswith(".json") and "chapters_json_url" not in memo

    # The cover and the chapters, fetched as an app does.
    cover = fetch(talk["episode_art_url"])
    assert cover.status_code == 200 and cover["Content-Type"] == "image/jpeg" and cover.body[:3] == b"\xff\xd8\xff"
    chapters = fetch(talk["chapters_json_url"])
    assert chapters["Content-Type"] == "application/json+chapters"
    document = json.loads(chapters.body)
    assert document["version"] == "1.2.0"
    assert [(c["title"], c["startTime"]) for c in document["chapters"]] == [
        ("Part 1", 0.0),
        ("Part 2", pytest.approx(2.0, abs=0.1)),
        ("Part 3", pytest.approx(4.0, abs=0.1)),
    ]
    # The raw XML: the namespaces and attributes as the specs spell them.
    channel = ET.fromstring(response.body).find("channel")  # noqa: S314 - our own document
    item = next(i for i in channel.findall("item") if i.findtext("title") == "Quarterly talk")
    assert item.find("guid").get("isPermaLink") == "false"
    assert item.find(f"{PODCAST}chapters").get("type") == "application/json+chapters"
    assert channel.findtext(f"{ITUNES}block") == "Yes"


def test_an_enclosure_downloads_and_seeks_without_any_auth_header(alice, memo):
    url = feed_url(alice)
    entry = next(e for e in feedparser.parse(fetch(url).body).entries if e.title == "voice memo")
    mp3 = stored_mp3(memo)
    whole = fetch(entry.enclosures[0].href)
    assert whole.status_code == 200 and whole["Content-Type"] == "audio/mpeg" and whole.body == mp3
    part = fetch(entry.enclosures[0].href, Range="bytes=500-")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 500-{len(mp3) - 1}/{len(mp3)}"
    assert part.body == mp3[500:]
    head = Client().head(path_of(entry.enclosures[0].href))  # apps ask the size first
    assert head.status_code == 200 and int(head["Content-Length"]) == len(mp3)


def test_a_revoked_or_renewed_token_gives_404_for_the_feed_and_its_enclosures(alice, jobs):
    first = feed_url(alice)
    talk = next(e for e in feedparser.parse(fetch(first).body).entries if e.title == "Quarterly talk")
    links = [first, talk.enclosures[0].href, talk.image.href]
    second = feed_url(alice)  # renewed: a new address, the old one and its episodes dead
    assert second != first
    for link in links:
        assert fetch(link).status_code == 404, link
    assert fetch(second).status_code == 200
    new_links = [second, *(e.enclosures[0].href for e in feedparser.parse(fetch(second).body).entries)]
    assert alice.delete("/api/feed/").status_code == 204
    assert alice.get("/api/feed/").json() == {"active": False, "url": None, "created_at": None}
    assert PodcastFeed.objects.get(owner=alice.user).token_digest == ""
    for link in new_links:
        assert fetch(link).status_code == 404, link


def test_an_enclosure_of_a_deleted_or_expired_job_gives_404_and_leaves_the_feed(alice, jobs):
    url = feed_url(alice)
    entries = {e.title: e for e in feedparser.parse(fetch(url).body).entries}
    Job.objects.filter(id=jobs["audio"].id).update(status=Job.Status.EXPIRED)
    assert fetch(entries["voice memo"].enclosures[0].href).status_code == 404
    deletion.job_delete(job=jobs["video"])
    assert fetch(entries["Quarterly talk"].enclosures[0].href).status_code == 404
    assert fetch(entries["Quarterly talk"].image.href).status_code == 404
    assert feedparser.parse(fetch(url).body).entries == []


def test_a_second_poll_costs_a_304_by_etag_or_by_date(alice, memo, media_files):
    url = feed_url(alice)
    first = fetch(url)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag and modified
    again = fetch(url, If_None_Match=etag)
    assert again.status_code == 304 and again.body == b"" and again["ETag"] == etag
    assert fetch(url, If_Modified_Since=modified).status_code == 304
    # A new MP3 changes both.
    newer = upload_accepted(alice, media.make_media(media_files, "mp3_audio"), name="later.mp3")["id"]
    assert job_convert(job_id=newer) == "done"
    changed = fetch(url, If_None_Match=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert "later" in {e.title for e in feedparser.parse(changed.body).entries}


def test_a_made_up_feed_token_is_404_and_the_api_needs_a_sign_in(alice, memo):
    url = feed_url(alice)
    enclosure = feedparser.parse(fetch(url).body).entries[0].enclosures[0].href
    alice.user.is_active = False  # a deactivated account publishes nothing
    alice.user.save(update_fields=["is_active"])
    assert fetch(url).status_code == 404 and fetch(enclosure).status_code == 404
    for path in ("/feeds/" + "A" * 43 + ".xml", "/feeds/short.xml", f"/feeds/{memo.id}/{'A' * 43}.mp3"):
        assert Client().get(path).status_code == 404, path
    assert Client().get("/api/feed/").status_code == 401
