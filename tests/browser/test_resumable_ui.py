"""The jobs page sends each file resumably (tus-js-client against /api/uploads/): a connection cut off
mid-upload, or a reload of the page, resumes where it stopped, with the bar going on from there."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import named_media
from tests.browser.test_ui import choose_files, sign_in, upload_row, wait_done
from tests.factories import user_create
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHUNK = 8 * 1024**2  # uploads.views.UPLOAD_CHUNK_BYTES
UPLOADS = re.compile(r"/api/uploads/")
# Every value the row's progress bar takes, sampled while the page runs (the row goes once the job exists).
RECORD_BAR = """name => { window.__bar = []; window.setInterval(() => {
  const bar = [...document.querySelectorAll('li.upload')].find(row => row.textContent.includes(name));
  const progress = bar && bar.querySelector('progress');
  if (progress && !progress.hidden) window.__bar.push(progress.value);
}, 20); }"""


def wait_in_page(page, predicate, timeout: float = 60) -> bool:
    """wait_until for what route handlers record: they run only while Playwright has the thread."""
    for _ in range(int(timeout * 10)):
        if predicate():
            return True
        page.wait_for_timeout(100)
    return predicate()


class Connection:
    """The page's requests to /api/uploads/, cut off on demand (Playwright aborts them as a dropped
    connection would). `requests` records each one's method, Upload-Offset and whether it went through."""

    def __init__(self, page, *, cut_after_offset: int | None = None):
        self.requests: list[tuple[str, int, str]] = []
        self.cut = False
        self.cut_after_offset = cut_after_offset
        page.route(UPLOADS, self.handle)

    def handle(self, route):
        request = route.request
        offset = int(request.headers.get("upload-offset", "-1"))
        if self.cut_after_offset is not None and request.method == "PATCH" and offset > self.cut_after_offset:
            self.cut = True
        self.requests.append((request.method, offset, "cut" if self.cut else "sent"))
        if self.cut:
            route.abort("connectionreset")
        else:
            route.continue_()

    def patches(self, fate: str) -> list[int]:
        return [offset for method, offset, went in self.requests if method == "PATCH" and went == fate]

    def attempts_cut(self) -> int:
        return sum(went == "cut" for _, _, went in self.requests)


def test_an_upload_cut_off_midway_resumes_from_where_it_stopped_to_a_done_job(page, live_system):
    user = user_create()
    clip = named_media(live_system.media_dir, "wav_pcm", "field-recording.wav", seconds=200.0)
    size = clip.stat().st_size
    assert 2 * CHUNK < size < 3 * CHUNK  # three PATCHes
    sign_in(page, live_system, user.email)
    page.evaluate(RECORD_BAR, clip.name)
    connection = Connection(page, cut_after_offset=0)  # cut once the first 8 MiB arrived
    choose_files(page, [clip])
    assert wait_in_page(page, lambda: connection.attempts_cut() >= 2), connection.requests  # and tried again
    expect(upload_row(page, clip.name).locator(".upload-error")).to_be_hidden()  # retrying, not failed
    connection.cut = False  # the connection is back
    connection.cut_after_offset = None
    wait_done(page, clip.name)
    assert connection.patches("sent") == [0, CHUNK, 2 * CHUNK], connection.requests  # not started over
    # What the first PATCH brought stays: once the bar passed it, it never goes below it again (the bytes of a
    # PATCH cut off mid-way may be sent again, so it can step back to there, not to 0).
    kept = 100 * CHUNK // size
    bar = page.evaluate("window.__bar")
    reached = next(index for index, value in enumerate(bar) if value >= kept)
    assert min(bar[reached:]) >= kept, bar
    job = Job.objects.get(owner=user)
    assert job.size == size and job.status == "done"


def test_a_reload_mid_upload_resumes_when_the_file_is_chosen_again(page, live_system):
    user = user_create()
    clip = named_media(live_system.media_dir, "wav_pcm", "long-interview.wav", seconds=200.0)
    sign_in(page, live_system, user.email)
    cut = Connection(page, cut_after_offset=0)
    choose_files(page, [clip])
    assert wait_in_page(page, lambda: cut.attempts_cut() >= 1), cut.requests
    page.reload()  # the file is gone from the page; the upload's URL stays in localStorage
    page.wait_for_load_state()
    page.unroute(UPLOADS)
    page.evaluate(RECORD_BAR, clip.name)
    resumed = Connection(page)
    choose_files(page, [clip])
    wait_done(page, clip.name)
    assert resumed.patches("sent") == [CHUNK, 2 * CHUNK], resumed.requests  # from where it stopped
    bar = page.evaluate("window.__bar")
    assert bar and min(bar) >= 100 * CHUNK // clip.stat().st_size, bar  # the bar went on from there
    assert Job.objects.filter(owner=user).count() == 1
