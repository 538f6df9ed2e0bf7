"""Issue #19 in Chromium: what a newcomer hit on the pages, driven the way they drove them."""

import re
import subprocess
import uuid

import pytest
from playwright.sync_api import expect

from core.media.ffmpeg import ffmpeg_path
from tests.browser.conftest import MAX_UPLOAD_SIZE, named_media
from tests.browser.test_ui import choose_files, job_row, sign_in, wait_done
from tests.factories import DEFAULT_PASSWORD, job_create, user_create
from tests.support import media
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_keyboard_sign_in_tabs_from_the_email_to_the_password(page, live_system):
    """Item 1, with the keyboard alone: Tab from Email lands on Password, not on "Forgot password?"."""
    user = user_create(email="keys@example.com")
    page.goto(live_system.url("/accounts/login/"))
    expect(page.get_by_label("Email address")).to_be_focused()  # autofocus
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(DEFAULT_PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Forgot password?")).to_be_focused()  # still reachable, after the field
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_system.url("/"))
    expect(page.locator("[data-jobs]")).to_be_attached()  # signed in: the jobs page


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.CONVERTING, Job.Status.FAILED])
def test_the_job_page_of_a_job_that_is_not_done_shows_no_null(page, live_system, status):
    """Item 3: the job page drew its missing player as the word "null" under the status."""
    user = user_create()
    job = job_create(owner=user, original_filename="talk.mp4", status=status, error="It failed.", progress=40)
    sign_in(page, live_system, user.email, path=f"/jobs/{job.id}/")
    detail = page.locator("[data-job-detail]")
    expect(detail.locator(".badge")).to_be_visible()  # drawn by app.js
    expect(detail).not_to_contain_text("null")


def silent_wav(directory):
    """A WAV of digital silence: normalizing it fails (there is no loudness to measure)."""
    target = directory / "named" / "room-tone.wav"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                ffmpeg_path(),
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "anullsrc=r=44100:cl=mono",
                "-t",
                "3",
                str(target),
            ],
            check=True,
            timeout=60,
        )
    return target


def test_a_failed_job_is_converted_again_with_other_options_without_a_new_upload(page, live_system):
    """Item 4: Normalize fails on silence; "Convert again" changes that option and the same job finishes."""
    user = user_create()
    wav = silent_wav(live_system.media_dir)
    sign_in(page, live_system, user.email)
    page.get_by_text("Output options").click()
    page.locator("[data-options-form] select[name=normalize]").select_option("true")  # "Loudness"
    choose_files(page, [wav])
    row = job_row(page, wav.name)
    expect(row.locator(".badge")).to_have_text("Failed", timeout=60_000)
    expect(row.locator(".job-error")).to_contain_text("without normalization")
    uploads_before = page.evaluate("performance.getEntriesByType('resource').length")

    row.get_by_role("button", name=f"Convert again {wav.name}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("select[name=normalize]")).to_have_value("true")  # the job's own options, to change
    dialog.locator("select[name=normalize]").select_option("false")
    dialog.get_by_label("Constant bitrate").select_option("96")
    dialog.get_by_role("button", name="Retry with these options").click()
    expect(dialog).to_be_hidden()
    wait_done(page, wav.name)
    job = Job.objects.get(owner=user)  # the same job: no second row, no second upload
    assert job.options["normalize"] is False and job.options["bitrate"] == 96
    expect(page.locator("li.job")).to_have_count(1)
    sent = page.evaluate("performance.getEntriesByType('resource').map(e => [e.name, e.encodedBodySize])")
    assert all("/api/jobs/" in name for name, _ in sent[uploads_before:]), sent


def test_a_done_job_is_converted_again_into_a_second_mp3(page, live_system):
    """Item 4: a done job converted again with another bitrate gets a new job; the first MP3 stays."""
    user = user_create()
    clip = named_media(live_system.media_dir, "mkv_vp9_opus", "choir.mkv", seconds=2.0)
    sign_in(page, live_system, user.email)
    choose_files(page, [clip])
    wait_done(page, clip.name)
    first = Job.objects.get(owner=user)
    # Unchanged, the dialog's options are the job's own: dedup hands back the same MP3 at once.
    job_row(page, clip.name).first.get_by_role("button", name=f"Convert again {clip.name}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Constant bitrate")).to_have_value("")  # never asked for: left as Default
    dialog.get_by_role("button", name="Convert").click()
    expect(page.locator("li.job")).to_have_count(2)
    reused = Job.objects.exclude(id=first.id).get(owner=user)
    assert reused.reused_from == first.id and reused.mp3_file_id == first.mp3_file_id and reused.status == "done"
    Job.objects.filter(id=reused.id).delete()
    page.reload()
    job_row(page, clip.name).get_by_role("button", name=f"Convert again {clip.name}").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Constant bitrate").select_option("64")
    dialog.get_by_label("Title").fill("Choir, small")
    dialog.get_by_role("button", name="Convert").click()
    second = page.locator("li.job", has=page.get_by_role("link", name="Choir, small"))
    expect(second.locator(".badge")).to_have_text("Done", timeout=60_000)
    expect(second.locator(".job-meta")).to_contain_text(clip.name)  # the custom title names its file
    expect(page.locator("li.job")).to_have_count(2)
    jobs = {job.id: job for job in Job.objects.filter(owner=user)}
    assert jobs[first.id].status == "done" and jobs[first.id].mp3_file_id == first.mp3_file_id
    (other,) = [job for job in jobs.values() if job.id != first.id]
    assert other.options["bitrate"] == 64 and other.mp3_size < first.mp3_size


def test_a_visit_fetches_no_audio_until_play(page, live_system):
    """Item 5: the list's players make no media request; Play makes the first, for that MP3 alone."""
    user = user_create()
    clips = [named_media(live_system.media_dir, "m4a_aac", f"memo-{n}.m4a", seconds=2.0) for n in range(3)]
    sign_in(page, live_system, user.email)
    choose_files(page, clips)
    for clip in clips:
        wait_done(page, clip.name)
    mp3_requests = []
    page.on("request", lambda request: mp3_requests.append(request.url) if request.url.endswith("/mp3") else None)
    page.reload()
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    assert mp3_requests == [], mp3_requests
    player = job_row(page, "memo-1.m4a").locator("[data-player]")
    player.get_by_role("button", name="Play memo-1.m4a").click()
    expect(player).to_have_class(re.compile("is-playing"))
    job = Job.objects.get(original_filename="memo-1.m4a")
    assert set(mp3_requests) == {live_system.url(f"/api/jobs/{job.id}/mp3")}


def test_polls_send_only_what_changed(page, live_system):
    """Item 5: a poll names the versions it holds; an unchanged list answers 304, a change sends that job."""
    user = user_create()
    for number in range(20):
        job_create(owner=user, original_filename=f"talk-{number:02d}.mp4", status="failed", error="It failed.")
    sign_in(page, live_system, user.email)

    def poll_now():
        with page.expect_response(lambda response: "/api/jobs/?known=" in response.url) as answer:
            page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # polls now, not in 15 s
        return answer.value

    first = poll_now()
    assert first.status == 200 and first.json()["results"] == []  # the page's own JSON is current
    assert poll_now().status == 304  # nothing changed: no body at all
    job = Job.objects.get(owner=user, original_filename="talk-07.mp4")
    Job.objects.filter(id=job.id).update(error="It failed differently.")
    changed = poll_now().json()
    assert [entry["id"] for entry in changed["results"]] == [str(job.id)]  # only the job that changed
    assert len(changed["versions"]) == 20
    expect(job_row(page, "talk-07.mp4").locator(".job-error")).to_have_text("It failed differently.")
    Job.objects.filter(id=job.id).delete()
    gone = poll_now().json()
    assert gone["results"] == [] and len(gone["versions"]) == 19
    expect(job_row(page, "talk-07.mp4")).to_have_count(0)  # deleted elsewhere: the row goes too


def test_a_new_upload_row_is_in_view_at_both_widths(page, live_system):
    """Item 7: with Output options open, choosing a file shows its row without scrolling by hand."""
    user = user_create()
    clip = named_media(live_system.media_dir, "mkv_vp9_opus", "hallway.mkv", seconds=2.0)
    sign_in(page, live_system, user.email)
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.evaluate("window.scrollTo(0, 0)")
        details = page.locator("[data-output-options]")
        if not details.evaluate("d => d.open"):
            page.get_by_text("Output options").click()
        page.locator("[data-options-form]").get_by_label(
            "Artist"
        ).focus()  # as a user who just set an option further down
        choose_files(page, [clip])
        row = page.locator("li.upload").last
        # Whole, and clear of the sticky header, once the page's smooth scroll has brought it there.
        page.wait_for_function(
            """row => {
                const r = row.getBoundingClientRect();
                const bar = document.querySelector('.topbar').getBoundingClientRect();
                return r.height > 0 && r.top >= bar.bottom - 1 && r.bottom <= window.innerHeight;
            }""",
            arg=row.element_handle(),
            timeout=10_000,
        )
        wait_done(page, clip.name)
        Job.objects.filter(owner=user).delete()
        page.reload()


@pytest.mark.parametrize("width", [1280, 390])
def test_shift_tab_never_leaves_focus_under_the_sticky_header(page, live_system, width):
    """Item 8: walking back through the page with Shift+Tab, every focused control is below the header."""
    user = user_create()
    for number in range(6):
        job_create(owner=user, original_filename=f"walk-{number}.mp4", status="failed", error="It failed.")
    page.set_viewport_size({"width": width, "height": 700})
    sign_in(page, live_system, user.email)
    page.keyboard.press("End")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.locator("footer a").focus()
    seen = 0
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        page.wait_for_timeout(80)
        box = page.evaluate(
            """() => {
                const e = document.activeElement;
                if (!e || e === document.body || e.closest('.topbar')) return null;
                const r = e.getBoundingClientRect();
                // What the user sees at the control's top edge and centre: the control, or the header over it.
                const hits = [[r.left + r.width / 2, r.top + 2], [r.left + r.width / 2, r.top + r.height / 2]]
                    .map(([x, y]) => document.elementFromPoint(x, y));
                const covered = hits.some(hit => hit && !e.contains(hit) && hit.closest('.topbar'));
                return {covered, top: r.top, name: e.outerHTML.slice(0, 80)};
            }"""
        )
        if box is None:
            continue
        seen += 1
        assert not box["covered"], f"focused control under the header: {box}"
    assert seen > 10


def test_small_things_read_right(page, live_system):
    """Item 10: a trimmed MP3's length reads as its player counts; the Title shows in the list; one size unit;
    the dedup fact reads as a sentence."""
    user = user_create()
    done = job_create(
        owner=user,
        original_filename="walkthrough.mp4",
        status="done",
        duration=20.0,
        mp3_duration=7.55,
        mp3_size=3 * 1024 * 1024,
        options={"title": "Walkthrough, part one", "start": 1.0, "end": 8.55},
        reused_from=uuid.uuid4(),
    )
    sign_in(page, live_system, user.email)
    row = page.locator("li.job", has=page.get_by_role("link", name="Walkthrough, part one"))
    expect(row.locator(".job-meta")).to_contain_text("walkthrough.mp4")
    expect(row.locator(".job-meta")).to_contain_text("MP3 0:07")
    expect(row.locator(".player-time")).to_have_text("0:00 / 0:07")
    expect(row.locator(".job-meta")).to_contain_text("3.0 MB")
    expect(page.locator(".dropzone-hint")).to_contain_text("up to 25 MB each")
    expect(page.locator("body")).not_to_contain_text("{#")  # no template comment leaks onto the page
    too_large = media.make_random_bytes(live_system.media_dir, MAX_UPLOAD_SIZE + 1, suffix=".mp4")
    choose_files(page, [too_large])
    expect(page.locator("li.upload .upload-error")).to_contain_text("limit of 25 MB")  # the same unit as above
    page.goto(live_system.url(f"/jobs/{done.id}/"))
    facts = page.locator(".facts")
    expect(facts).not_to_contain_text("no:")
    expect(facts).to_contain_text("This MP3 comes from an earlier conversion")


def test_an_upload_that_finds_the_server_full_waits_and_goes_through(page, live_system):
    """The web process takes MAX_CONCURRENT_UPLOADS uploads at once (the live system's: 4 threads - 2);
    one more is answered 503 with Retry-After, and the page waits for room instead of failing."""
    from rest_framework_simplejwt.tokens import AccessToken

    from tests.support.slow_uploads import held_upload

    user = user_create()
    # Past the 4 MiB a body may have without counting (a preflight check, a short clip).
    clip = named_media(live_system.media_dir, "wav_pcm", "waiting-room.wav", seconds=100.0)
    assert clip.stat().st_size > 4 * 1024**2
    sign_in(page, live_system, user.email)
    token = str(AccessToken.for_user(user))
    # Past the 4 MiB that go uncounted, and small enough that both fit the spool room beside each other, so
    # both are taken in and held and fill the process's two upload slots (the page's resumable chunks take
    # a slot each, and no spool room: their bytes go to GridFS).
    held = 5 * 1024**2
    with (
        held_upload(live_system.base_url, token, announced_size=held),
        held_upload(live_system.base_url, token, announced_size=held),
    ):
        choose_files(page, [clip])
        row = page.locator("li.upload", has=page.get_by_text(clip.name, exact=True))
        expect(row.locator(".upload-status")).to_have_text("Waiting for room on the server…")
        expect(row.locator(".upload-error")).to_be_hidden()
    wait_done(page, clip.name, timeout=60_000)  # the held uploads ended: it was sent on its own
