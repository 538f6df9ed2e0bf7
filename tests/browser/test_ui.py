"""The browser UI in headless Chromium against the live system: gunicorn, run_converter and run_notifier.

Each test is one thing a person does: sign up, upload two videos and watch them convert, play and
download, see a rejected file's sentence, retry, cancel, delete, change and reset the password, upload
with the keyboard alone, drop files, sign out, download the done MP3s as one ZIP. The run leaves its screenshots
under docs/screenshots/.
"""

import re
import zipfile

import pytest
from playwright.sync_api import expect

from core import storage
from core.media import probe
from tests.browser.conftest import MAX_UPLOAD_SIZE, long_recording, named_media, screenshot
from tests.factories import DEFAULT_PASSWORD, job_create, user_create
from tests.support import media
from tests.support.pipeline import email_text, read_emails, wait_for_job
from tests.support.processes import wait_until
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a brand new passphrase 42"


# ---- helpers ---------------------------------------------------------------------------------------


def sign_in(page, live, email, password=DEFAULT_PASSWORD, path="/"):
    page.goto(live.url(path))
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live.url(path))
    page.wait_for_load_state()  # app.js (deferred) has wired up the page


def job_row(page, filename):
    return page.locator("li.job", has=page.get_by_role("link", name=filename, exact=True))


def upload_row(page, filename):
    return page.locator("li.upload", has=page.get_by_text(filename, exact=True))


def choose_files(page, paths):
    """Pick files the way a person does: the "Choose videos…" button opens the file chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Choose videos…").click()
    chooser.value.set_files([str(path) for path in paths])


def mark_document(page):
    """A flag that survives only as long as this document: a reload or navigation drops it."""
    page.evaluate("window.__sameDocument = true")


def assert_same_document(page):
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded; it should update itself"


def wait_done(page, filename, timeout=60_000):
    expect(job_row(page, filename).locator(".badge")).to_have_text("Done", timeout=timeout)


def sign_out(page):
    page.get_by_label(re.compile("^Account menu")).click()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def emails_to(live, address):
    return [m for m in read_emails(live.email_dir) if m["To"] == address]


def local(live, link):
    """An emailed link (built on PUBLIC_URL) pointed at the live test server."""
    return live.url(re.sub(r"^https?://[^/]+", "", link))


# ---- the tests ---------------------------------------------------------------------------------------


def test_sign_up_and_land_on_an_empty_jobs_page(page, live_system):
    page.goto(live_system.url("/"))
    expect(page).to_have_url(live_system.url("/accounts/login/?next=/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")

    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email address").fill("newcomer@example.com")
    page.get_by_label("Password").fill("123")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".field-errors")).to_contain_text("This password is too short")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Password").fill("my first videomp3 password")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(live_system.url("/"))
    expect(page.get_by_role("status")).to_contain_text("Welcome to videomp3")
    expect(page.get_by_role("heading", name="No conversions yet")).to_be_visible()
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)  # not staff
    assert Job.objects.count() == 0


def test_upload_two_videos_watch_them_convert_play_one_and_download_the_other(page, live_system):
    user_create(email="alice@example.com")
    talk = named_media(live_system.media_dir, "mp4_h264_aac_moov_end", "team-meeting.mp4", seconds=4.0)
    clip = named_media(live_system.media_dir, "mov_h264_aac", "interview.mov", seconds=3.0)
    sign_in(page, live_system, "alice@example.com")
    mark_document(page)

    choose_files(page, [talk, clip])
    for name in ("team-meeting.mp4", "interview.mov"):
        row = upload_row(page, name)
        expect(row.get_by_role("progressbar", name=f"Upload of {name}")).to_have_attribute("value", "100")
        expect(row.locator(".upload-status")).to_have_text("Uploaded · 100 %")
    # Both jobs appear and convert while the page stays put.
    for name in ("team-meeting.mp4", "interview.mov"):
        wait_done(page, name)
    assert_same_document(page)
    assert Job.objects.filter(status="done").count() == 2

    # Play the first with its row's Play button: the browser reads the MP3 through the Range-capable endpoint.
    player = job_row(page, "team-meeting.mp4").locator("[data-player]")
    player.get_by_role("button", name="Play team-meeting.mp4").click()
    expect(player).to_have_class(re.compile("is-playing"))
    expect(player.locator(".player-time")).not_to_have_text(re.compile(r"^0:00 /"), timeout=15_000)  # it plays
    expect(player.locator(".player-time")).to_have_text(re.compile(r" / 0:0[34]$"))  # the MP3's own length
    player.get_by_role("button", name="Pause team-meeting.mp4").click()
    expect(player).not_to_have_class(re.compile("is-playing"))

    # Download the second: the bytes are the MP3 the converter stored.
    row = job_row(page, "interview.mov")
    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download MP3 of interview.mov").click()
    download = download_info.value
    assert download.suggested_filename == "interview.mp3"
    data = open(download.path(), "rb").read()
    job = Job.objects.get(original_filename="interview.mov")
    assert len(data) == job.mp3_size
    assert data[:3] == b"ID3" or data[0] == 0xFF
    info = probe.probe(download.path())
    assert info.container == "mp3" and info.audio_codecs == ["mp3"]
    assert abs(info.duration - probe.media_duration(clip)) < 0.5
    expect(page.locator("li.upload")).to_have_count(0, timeout=10_000)  # the finished uploads fade out
    screenshot(page, "jobs-finished")


def test_rejected_files_show_the_servers_sentence(page, live_system):
    from uploads.services.intake import too_large_sentence

    user_create(email="bob@example.com")
    no_audio = named_media(live_system.media_dir, "mp4_no_audio", "silent-film.mp4")
    not_video = live_system.media_dir / "named" / "notes.mp4"
    not_video.write_text("These are my meeting notes, not a video.\n" * 50)
    too_large = media.make_random_bytes(live_system.media_dir, MAX_UPLOAD_SIZE + 1, suffix=".mp4")
    sign_in(page, live_system, "bob@example.com")

    choose_files(page, [no_audio, not_video, too_large])
    expect(upload_row(page, "silent-film.mp4").locator(".upload-error")).to_have_text(probe.NO_AUDIO)
    expect(upload_row(page, "notes.mp4").locator(".upload-error")).to_have_text(probe.NOT_MEDIA)
    expect(upload_row(page, too_large.name).locator(".upload-error")).to_have_text(too_large_sentence())
    for row in page.locator("li.upload").all():
        expect(row.locator(".upload-status")).to_have_text("Not uploaded")
    assert Job.objects.count() == 0

    upload_row(page, "silent-film.mp4").get_by_role("button", name="Dismiss silent-film.mp4").click()
    expect(upload_row(page, "silent-film.mp4")).to_have_count(0)
    expect(page.locator("li.upload")).to_have_count(2)


def test_retry_a_failed_job(page, live_system):
    user_create(email="carol@example.com")
    broken = media.make_undecodable_audio(live_system.media_dir)
    sign_in(page, live_system, "carol@example.com")
    mark_document(page)
    choose_files(page, [broken])

    row = job_row(page, broken.name)
    expect(row.locator(".badge")).to_have_text("Failed", timeout=60_000)
    job = Job.objects.get(original_filename=broken.name)
    expect(row.locator(".job-error")).to_have_text(job.error)
    assert job.error.endswith(".") and "Traceback" not in job.error
    # The converter would fail this file the same way again. To see a retry go through, the stored
    # source is swapped for a decodable one, as if the first failure had been a passing problem.
    good = storage.save_path(
        storage.SOURCES,
        media.make_media(live_system.media_dir, "m4a_aac"),
        filename=broken.name,
        content_type="audio/mp4",
    )
    Job.objects.filter(id=job.id).update(source_file_id=good.file_id)

    row.get_by_role("button", name=f"Retry {broken.name}").click()
    wait_done(page, broken.name)
    expect(row.locator("[data-player]")).to_be_visible()
    expect(row.locator(".job-error")).to_have_count(0)
    assert_same_document(page)
    assert Job.objects.get(id=job.id).attempts == 2


def test_cancel_a_converting_job(page, live_system):
    user_create(email="dave@example.com")
    done = [
        named_media(live_system.media_dir, "webm_vp8_vorbis", "product-demo.webm"),
        named_media(live_system.media_dir, "avi_mpeg4_mp3", "conference-keynote.avi", seconds=5.0),
    ]
    lecture = long_recording(live_system.media_dir)
    later = named_media(live_system.media_dir, "mp4_faststart", "podcast-episode-12.mp4", seconds=6.0)
    sign_in(page, live_system, "dave@example.com")
    choose_files(page, done)
    for path in done:
        wait_done(page, path.name)

    choose_files(page, [lecture])
    row = job_row(page, lecture.name)
    expect(row.locator(".badge")).to_have_text("Converting", timeout=60_000)
    choose_files(page, [later])  # waits in the queue behind the long one
    expect(job_row(page, later.name).locator(".badge")).to_have_text("Queued")
    bar = row.get_by_role("progressbar", name=f"Converting {lecture.name}")
    page.wait_for_function("bar => bar.value >= 20", arg=bar.element_handle(), timeout=60_000)
    expect(page.locator("li.upload")).to_have_count(0, timeout=10_000)  # let the finished uploads fade out
    screenshot(page, "jobs-converting")

    row.get_by_role("button", name=f"Cancel {lecture.name}").click()
    expect(row.locator(".badge")).to_have_text("Cancelled")
    # Focus stays in the row, on the first of the controls that replaced Cancel (a cancelled job can be retried).
    expect(row.get_by_role("button", name=f"Retry {lecture.name}")).to_be_focused()
    job = Job.objects.get(original_filename=lecture.name)
    assert job.status == "cancelled" and job.mp3_file_id == ""
    # The converter stops that ffmpeg and moves on to the next job.
    wait_done(page, later.name)
    assert Job.objects.get(id=job.id).mp3_file_id == ""


def test_delete_a_job_after_confirming(page, live_system):
    user_create(email="erin@example.com")
    song = named_media(live_system.media_dir, "wav_pcm", "voice-memo.wav")
    sign_in(page, live_system, "erin@example.com")
    choose_files(page, [song])
    wait_done(page, song.name)
    job = Job.objects.get(original_filename=song.name)
    wait_for_job(job.id, lambda j: j.notified_at is not None)

    row = job_row(page, song.name)
    dialog = page.get_by_role("dialog")
    row.get_by_role("button", name=f"Delete {song.name}").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Delete {song.name}?")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    expect(row).to_be_visible()
    assert Job.objects.filter(id=job.id).exists()

    row.get_by_role("button", name=f"Delete {song.name}").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    expect(page.get_by_role("heading", name="No conversions yet")).to_be_visible()
    expect(page.locator("[data-announcer]")).to_have_text(f"Deleted {song.name}.")
    assert not Job.objects.filter(id=job.id).exists()


def test_change_the_password_and_sign_in_with_the_new_one(page, live_system):
    user_create(email="frank@example.com")
    sign_in(page, live_system, "frank@example.com")
    page.get_by_label(re.compile("^Account menu")).click()
    page.get_by_role("link", name="Change password").click()
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()

    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator(".field-errors")).to_contain_text("Your old password was entered incorrectly")

    page.get_by_label("Current password").fill(DEFAULT_PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(live_system.url("/"))
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")

    sign_out(page)
    page.get_by_label("Email address").fill("frank@example.com")
    page.get_by_label("Password", exact=True).fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("don't match an account")
    sign_in(page, live_system, "frank@example.com", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Your conversions")).to_be_visible()


def test_reset_a_forgotten_password_through_the_emailed_link(page, live_system):
    user_create(email="grace@example.com")
    page.goto(live_system.url("/accounts/login/"))
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email address").fill("grace@example.com")
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    messages = wait_until(lambda: emails_to(live_system, "grace@example.com"), timeout=10)
    assert len(messages) == 1 and messages[0]["Subject"] == "Reset your videomp3 password"
    link = re.search(r"https?://\S+/accounts/password/reset/\S+/", email_text(messages[0])).group(0)
    assert link.startswith("http://videomp3.test/")  # built on PUBLIC_URL, not on the request's Host header
    page.goto(local(live_system, link))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("heading", name="Your new password is set")).to_be_visible()

    page.goto(local(live_system, link))  # a link works once
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    sign_in(page, live_system, "grace@example.com", NEW_PASSWORD)


def test_one_whole_upload_with_the_keyboard_alone(page, live_system):
    user_create(email="heidi@example.com")
    talk = named_media(live_system.media_dir, "mov_h264_aac", "weekly-standup.mov")
    keyboard = page.keyboard

    def tab_to(predicate_js, limit=40):
        for _ in range(limit):
            keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const e = document.activeElement; return {predicate_js}; }})()"):
                # What has focus is visibly marked: an outline, or a ring drawn with box-shadow (text fields).
                style = page.evaluate("(s => [s.outlineStyle, s.boxShadow])(getComputedStyle(document.activeElement))")
                assert style != ["none", "none"], f"no visible focus on {predicate_js}"
                return
        raise AssertionError(f"Tab never reached the element: {predicate_js}")

    # Sign in: the email field has focus when the page opens.
    page.goto(live_system.url("/"))
    expect(page.get_by_label("Email address")).to_be_focused()
    keyboard.type("heidi@example.com")
    tab_to("e.id === 'id_password'")
    keyboard.type(DEFAULT_PASSWORD)
    keyboard.press("Enter")
    expect(page).to_have_url(live_system.url("/"))
    page.wait_for_load_state()

    tab_to("e.textContent.trim() === 'Choose videos…'")
    with page.expect_file_chooser() as chooser:
        keyboard.press("Enter")
    chooser.value.set_files(str(talk))
    wait_done(page, talk.name)

    tab_to(f"e.getAttribute('aria-label') === 'Download MP3 of {talk.name}'")
    with page.expect_download() as download_info:
        keyboard.press("Enter")
    assert download_info.value.suggested_filename == "weekly-standup.mp3"
    assert len(open(download_info.value.path(), "rb").read()) == Job.objects.get(original_filename=talk.name).mp3_size

    # Delete it from the keyboard too: the row's buttons are one toolbar (End reaches its last, Delete);
    # Escape keeps it, the dialog's Delete button removes it.
    keyboard.press("End")
    expect(page.get_by_role("button", name=f"Delete {talk.name}")).to_be_focused()
    keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("button", name="Keep it")).to_be_focused()
    keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.get_by_role("button", name=f"Delete {talk.name}")).to_be_focused()
    keyboard.press("Enter")
    keyboard.press("Tab")
    expect(page.get_by_role("dialog").get_by_role("button", name="Delete")).to_be_focused()
    keyboard.press("Enter")
    expect(job_row(page, talk.name)).to_have_count(0)


def test_drop_files_onto_the_page(page, live_system):
    user_create(email="ivan@example.com")
    sign_in(page, live_system, "ivan@example.com")
    audio = named_media(live_system.media_dir, "ogg_vorbis", "birdsong.ogg", seconds=2.0)
    payload = list(audio.read_bytes())
    data_transfer = page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: "audio/ogg" }));
            return transfer;
        }""",
        [audio.name, payload],
    )
    page.dispatch_event("[data-dropzone]", "dragenter", {"dataTransfer": data_transfer})
    expect(page.locator("[data-dropzone]")).to_have_class(re.compile("is-dragging"))
    page.dispatch_event("[data-dropzone]", "drop", {"dataTransfer": data_transfer})
    expect(page.locator("[data-dropzone]")).not_to_have_class(re.compile("is-dragging"))
    wait_done(page, audio.name)


def test_the_emailed_link_opens_the_job_page_after_sign_in(page, live_system):
    user_create(email="judy@example.com", is_staff=True)
    clip = named_media(live_system.media_dir, "mp4_h264_aac_moov_end", "site-visit.mp4", seconds=2.0)
    sign_in(page, live_system, "judy@example.com")
    expect(page.get_by_role("link", name="Admin")).to_have_attribute("href", "/admin/")  # staff only
    choose_files(page, [clip])
    wait_done(page, clip.name)
    sign_out(page)

    job = Job.objects.get(original_filename=clip.name)
    messages = wait_until(lambda: emails_to(live_system, "judy@example.com"), timeout=20)
    link = re.search(r"http://videomp3\.test/jobs/[0-9a-f-]+/", email_text(messages[0])).group(0)
    assert link.endswith(f"/jobs/{job.id}/")
    sign_in(page, live_system, "judy@example.com", path=f"/jobs/{job.id}/")
    expect(page.get_by_role("heading", name=clip.name)).to_be_visible()
    expect(page.locator(".badge")).to_have_text("Done")
    expect(page.locator("audio")).to_have_attribute("src", f"/api/jobs/{job.id}/mp3")
    expect(page.get_by_role("link", name=f"Download MP3 of {clip.name}")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("Duration")


def test_phone_width(page, live_system):
    user_create(email="kim@example.com")
    files = [
        named_media(live_system.media_dir, "mp4_h264_aac_moov_end", "family-dinner.mp4", seconds=4.0),
        named_media(live_system.media_dir, "mkv_vp9_opus", "guitar-lesson-03.mkv", seconds=5.0),
    ]
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_system, "kim@example.com")
    choose_files(page, files)
    for path in files:
        wait_done(page, path.name)
    expect(page.locator("li.upload")).to_have_count(0, timeout=10_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways at 390 px"
    for control in page.locator(".job-actions .button").all():
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 34
    screenshot(page, "jobs-phone")


def test_sign_out_and_the_jobs_page_asks_to_sign_in_again(page, live_system):
    user_create(email="leo@example.com")
    sign_in(page, live_system, "leo@example.com")
    sign_out(page)
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto(live_system.url("/"))
    expect(page).to_have_url(live_system.url("/accounts/login/?next=/"))
    response = page.request.get(live_system.url("/api/jobs/"))
    assert response.status == 401


def test_older_conversions_load_on_request(page, live_system):
    user = user_create(email="mia@example.com")
    for number in range(1, 24):
        job_create(
            owner=user,
            original_filename=f"clip-{number:02d}.mp4",
            size=1000 + number,
            status="failed",
            error="This video has no audio track, so there is nothing to convert to MP3.",
        )
    sign_in(page, live_system, "mia@example.com")
    expect(page.locator("li.job")).to_have_count(20)
    expect(page.locator("li.job").first).to_contain_text("clip-23.mp4")  # newest first
    page.get_by_role("button", name="Show older conversions").click()
    expect(page.locator("li.job")).to_have_count(23)
    expect(page.locator("li.job").last).to_contain_text("clip-01.mp4")
    expect(page.get_by_role("button", name="Show older conversions")).to_be_hidden()


def test_a_slow_upload_shows_its_progress_and_can_be_cancelled(page, live_system):
    user_create(email="nina@example.com")
    video = named_media(live_system.media_dir, "mkv_vp9_opus", "drone-footage.mkv", seconds=120.0)
    sign_in(page, live_system, "nina@example.com")
    # A slow uplink (about 200 KB/s), so the upload takes long enough to watch and to cancel.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 200 * 1024},
    )
    choose_files(page, [video])
    row = upload_row(page, video.name)
    bar = row.get_by_role("progressbar", name=f"Upload of {video.name}")
    page.wait_for_function("bar => bar.value >= 10 && bar.value < 90", arg=bar.element_handle(), timeout=20_000)
    expect(row.locator(".upload-status")).to_have_text(re.compile(r"^[\d.]+ (KB|MB) of 2\.\d MB · \d+ %$"))

    row.get_by_role("button", name=f"Cancel the upload of {video.name}").click()
    expect(row.locator(".upload-status")).to_have_text("Cancelled")
    expect(page.locator("[data-announcer]")).to_have_text(f"The upload of {video.name} was cancelled.")
    expect(row).to_have_count(0)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.wait_for_timeout(1000)  # anything that was still on its way has arrived by now
    assert Job.objects.count() == 0
    expect(page.get_by_role("heading", name="No conversions yet")).to_be_visible()


def test_the_done_mp3s_download_as_one_zip(page, live_system):
    user_create(email="olga@example.com")
    talk = named_media(live_system.media_dir, "mp4_h264_aac_moov_end", "all-hands.mp4", seconds=2.0)
    memo = named_media(live_system.media_dir, "wav_pcm", "voice-memo.wav", seconds=2.0)
    sign_in(page, live_system, "olga@example.com")
    archive = page.locator("[data-archive-link]")
    choose_files(page, [talk])
    wait_done(page, talk.name)
    expect(archive).to_be_hidden()  # one MP3 has its own Download button
    choose_files(page, [memo])
    wait_done(page, memo.name)

    expect(archive).to_have_text("Download 2 MP3s (ZIP)")
    with page.expect_download() as download_info:
        archive.click()
    download = download_info.value
    assert download.suggested_filename == "videomp3-mp3s.zip"
    with zipfile.ZipFile(download.path()) as zipped:
        assert sorted(zipped.namelist()) == ["all-hands.mp3", "voice-memo.mp3"]
        for job in Job.objects.filter(owner__email="olga@example.com"):
            stored = b"".join(storage.iter_range(storage.MP3S, job.mp3_file_id))
            assert zipped.read(job.mp3_filename) == stored
