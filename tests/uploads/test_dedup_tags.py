"""Dedup never hands out an MP3 whose tags are another upload's (issue #19 item 10): the title falls
back to the file's name, so the same content under another name is converted again, while the same
name, a title of the file's own or one chosen in the options still reuse the MP3. Through the API with
the real probe, SecantusDB, RabbitMQ and ffmpeg (job_convert); tags read back with ffprobe."""

import base64
import hashlib

import pytest

from conversion.services import job_convert
from tests.support import media
from tests.support.audio_checks import ffprobe_json
from tests.support.uploads import upload, upload_accepted
from uploads.models import Job
from uploads.options import JobOptions

pytestmark = pytest.mark.django_db(transaction=True)

# A body no parser can make sense of: a digest re-upload is answered without reading it.
UNREADABLE = b"x" * (64 * 1024 + 4096)


def converted(client, path, *, name, **options) -> dict:
    body = upload_accepted(client, path, name=name, **options)
    assert body["status"] == "queued" and body["reused_from"] is None, body
    assert job_convert(job_id=body["id"]) == "done"
    return client.get(f"/api/jobs/{body['id']}/").json()


def mp3_title(client, job_id, tmp_path) -> str:
    response = client.get(f"/api/jobs/{job_id}/mp3")
    assert response.status_code == 200, response.content
    mp3 = tmp_path / f"{job_id}.mp3"
    mp3.write_bytes(b"".join(response.streaming_content))
    return ffprobe_json(mp3)["format"]["tags"]["title"]


def test_the_same_bytes_under_another_name_are_converted_again_with_their_own_title(alice, media_files, tmp_path):
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path, name="clip30.mp4")

    second = upload_accepted(alice, path, name="dropped-clip.mp4")

    assert second["status"] == "queued" and second["reused_from"] is None
    assert job_convert(job_id=second["id"]) == "done"
    assert mp3_title(alice, first["id"], tmp_path) == "clip30"
    assert mp3_title(alice, second["id"], tmp_path) == "dropped-clip"


def test_the_same_bytes_under_the_same_name_reuse_the_mp3(alice, media_files, tmp_path):
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path, name="clip30.mp4")
    again = upload_accepted(alice, path, name="clip30.mp4")
    assert again["status"] == "done" and again["reused_from"] == first["id"]
    assert mp3_title(alice, again["id"], tmp_path) == "clip30"


@pytest.mark.parametrize(
    ("kind", "options", "title"),
    [("mkv_mp3_tagged", {}, "Source Title"), ("mp4_faststart", {"title": "My talk"}, "My talk")],
    ids=["the file's own title", "a title chosen in the options"],
)
def test_a_title_that_does_not_come_from_the_name_still_reuses_the_mp3(
    alice, media_files, tmp_path, kind, options, title
):
    path = media.make_media(media_files, kind)
    first = converted(alice, path, name=f"first{path.suffix}", **options)
    other_name = upload_accepted(alice, path, name=f"second{path.suffix}", **options)
    assert other_name["status"] == "done" and other_name["reused_from"] == first["id"]
    assert mp3_title(alice, other_name["id"], tmp_path) == title


def test_a_job_keyed_before_tags_counted_is_not_reused(alice, media_files):
    # Its key held the options alone: whose name its MP3's title is cannot be told, so it converts again.
    path = media.make_media(media_files, "mp4_faststart")
    first = converted(alice, path, name="clip30.mp4")
    old_key = JobOptions.from_stored(Job.objects.get(id=first["id"]).options).key()
    Job.objects.filter(id=first["id"]).update(options_key=old_key)

    again = upload_accepted(alice, path, name="clip30.mp4")

    assert again["status"] == "queued" and again["reused_from"] is None


def test_a_re_upload_declared_by_its_digest_takes_the_name_its_mp3_is_titled_with(alice, media_files, tmp_path):
    path = media.make_media(media_files, "mp4_faststart")
    converted(alice, path, name="clip30.mp4")
    latest = converted(alice, path, name="dropped-clip.mp4")
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode() + ":"

    response = alice.generic(
        "POST", "/api/jobs/", UNREADABLE, content_type="multipart/form-data; boundary=abc", HTTP_REPR_DIGEST=digest
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "done" and body["reused_from"] == latest["id"]
    assert body["filename"] == "dropped-clip.mp4" and mp3_title(alice, body["id"], tmp_path) == "dropped-clip"
    # Reused in turn by a later upload of that name, as any job of that content, options and title.
    again = upload(alice, path, name="dropped-clip.mp4").json()
    assert again["status"] == "done" and again["reused_from"] in (latest["id"], body["id"])
