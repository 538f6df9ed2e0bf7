"""Issue #19 items 9 and 10 in Chromium: a failed row reads in its owner's words, and the same file
uploaded under another name gets an MP3 titled with that name."""

import pytest
from playwright.sync_api import expect

from core.media.ffmpeg import DECODE_FAILED
from tests.browser.test_ui import job_row, sign_in
from tests.conversion.test_error_sentences import assert_plain, overwritten
from tests.factories import user_create
from tests.support import media
from tests.support.audio_checks import ffprobe_json
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def choose_named_file(page, path, name):
    """The page's file input given a file under a name of the test's choosing, as a person's own file."""
    page.locator("[data-file-input]").set_input_files(
        [{"name": name, "mimeType": "application/octet-stream", "buffer": path.read_bytes()}]
    )


def test_a_failed_row_shows_a_plain_sentence_and_an_audio_file_is_not_called_a_video(page, live_system):
    """Item 9: the sentence carried ffmpeg's words, and told the owner of an .m4a to re-export "the video"."""
    user = user_create()
    broken_video = overwritten(live_system.media_dir, "mp4_faststart", start=0.05, end=0.99)
    broken_audio = media.make_damaged_m4a(live_system.media_dir, damage="all")
    sign_in(page, live_system, user.email)
    choose_named_file(page, broken_video, "holiday.mp4")
    choose_named_file(page, broken_audio, "voice-memo.m4a")

    for name in ("holiday.mp4", "voice-memo.m4a"):
        row = job_row(page, name)
        expect(row.locator(".badge")).to_have_text("Failed", timeout=60_000)
        expect(row.locator(".job-error")).to_have_text(DECODE_FAILED)
        assert_plain(row.locator(".job-error").inner_text())
    assert "video" not in job_row(page, "voice-memo.m4a").locator(".job-error").inner_text().lower()

    job = Job.objects.get(original_filename="voice-memo.m4a")
    page.goto(live_system.url(f"/jobs/{job.id}/"))
    expect(page.locator(".job-error")).to_have_text(DECODE_FAILED)


def test_the_same_file_under_another_name_gets_an_mp3_titled_with_that_name(page, live_system, tmp_path):
    """Item 10: dedup handed dropped-clip.mp4 the MP3 of clip30.mp4, tagged "clip30"."""
    user = user_create()
    clip = media.make_media(live_system.media_dir, "mp4_faststart")
    sign_in(page, live_system, user.email)
    choose_named_file(page, clip, "clip30.mp4")
    expect(job_row(page, "clip30.mp4").locator(".badge")).to_have_text("Done", timeout=60_000)
    choose_named_file(page, clip, "dropped-clip.mp4")
    row = job_row(page, "dropped-clip.mp4")
    expect(row.locator(".badge")).to_have_text("Done", timeout=60_000)

    with page.expect_download() as download_info:
        row.locator("a[download]").click()
    mp3 = tmp_path / "dropped-clip.mp3"
    download_info.value.save_as(mp3)
    assert ffprobe_json(mp3)["format"]["tags"]["title"] == "dropped-clip"
