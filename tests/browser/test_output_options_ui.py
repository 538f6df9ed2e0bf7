"""Output options (issue #9) on the upload page, in headless Chromium against the live system: choose
them, upload, and read the MP3 the real converter made; a bad choice is shown beside its field."""

import re

import pytest
from playwright.sync_api import expect

from core import storage
from tests.browser.conftest import named_media, screenshot
from tests.browser.test_ui import choose_files, job_row, sign_in, upload_row, wait_done
from tests.factories import user_create
from tests.support import audio_checks
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def open_options(page):
    page.get_by_text("Output options", exact=True).click()
    expect(page.get_by_label("Preset")).to_be_visible()


def test_choose_a_preset_override_it_trim_and_tag_then_read_the_mp3(page, live_system, tmp_path):
    user_create(email="olga@example.com")
    video = named_media(live_system.media_dir, "mp4_faststart", "stand-up.mp4", seconds=4.0)
    sign_in(page, live_system, "olga@example.com")

    open_options(page)
    page.get_by_label("Preset").select_option("podcast")
    page.get_by_label("Constant bitrate").select_option("96")
    page.get_by_label("Start at").fill("1")
    page.get_by_label("End at").fill("00:00:02.500")
    page.get_by_label("Title").fill("Daily stand-up")
    page.get_by_label("No cover picture").check()
    screenshot(page, "upload-options")
    choose_files(page, [video])
    wait_done(page, "Daily stand-up")  # the row carries the chosen title, and names its file below it
    expect(job_row(page, "Daily stand-up").locator(".job-meta")).to_contain_text("stand-up.mp4")

    job = Job.objects.get()
    assert job.options["bitrate"] == 96 and job.options["channels"] == "mono" and job.options["normalize"] is True
    assert job.options["start"] == 1.0 and job.options["end"] == 2.5 and job.options["cover"] is False
    mp3 = tmp_path / "stand-up.mp3"
    storage.copy_to_path(storage.MP3S, job.mp3_file_id, mp3)
    stream = audio_checks.audio_stream(mp3)
    assert int(stream["bit_rate"]) == 96000 and stream["channels"] == 1
    assert abs(audio_checks.duration(mp3) - 1.5) <= 0.1
    tags = audio_checks.id3(mp3)
    assert str(tags["TIT2"]) == "Daily stand-up" and tags.getall("APIC") == []

    # The job's page says what was asked for, with the loudness the converter measured.
    job_row(page, "Daily stand-up").get_by_role("link", name="Daily stand-up", exact=True).click()
    options = page.locator("dd", has_text="kb/s")
    expect(options).to_contain_text("96 kb/s CBR · mono · 0:01–0:02.500 · normalized to -16 LUFS (input ")
    expect(options).to_contain_text("no cover")
    expect(options).to_contain_text("title “Daily stand-up”")


def test_a_bad_option_is_shown_beside_its_field_and_nothing_is_uploaded(page, live_system):
    user_create(email="pavel@example.com")
    video = named_media(live_system.media_dir, "mp4_faststart", "short-clip.mp4", seconds=3.0)
    sign_in(page, live_system, "pavel@example.com")

    open_options(page)
    page.get_by_label("End at").fill("10")
    choose_files(page, [video])
    row = upload_row(page, "short-clip.mp4")
    expect(row.locator(".upload-status")).to_have_text("Not uploaded")
    expect(row.locator(".upload-error")).to_contain_text("choose a time within it")
    end = page.get_by_label(re.compile("^End at"))
    expect(end).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".options-form .field-error")).to_have_text(re.compile(r"^This file lasts 3(\.\d+)? seconds"))
    assert Job.objects.count() == 0

    # Fixing the field and uploading again clears the error.
    end.fill("2")
    choose_files(page, [video])
    wait_done(page, "short-clip.mp4")
    expect(page.locator(".options-form .field-error")).to_have_count(0)
    assert Job.objects.get().options["end"] == 2.0
