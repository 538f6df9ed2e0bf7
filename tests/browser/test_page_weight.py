"""Issue #19 item 5: what the jobs page costs on the wire, measured in Chromium against the web role as
production runs it (DEBUG off, static files collected: hashed names, compressed).

Budgets from the issue: a first visit to a 20-job page (the page, its CSS and JS, one poll; no playback)
under 250 KB; an idle minute of polling under 10 KB; a minute of polling while a job converts under 100 KB.
Bytes are Chromium's transferSize (headers and encoded bodies). The figures are printed for the README.
"""

import subprocess
import sys
import threading
import time

import pytest
from playwright.sync_api import expect

from tests.browser.test_ui import sign_in
from tests.factories import job_create, user_create
from tests.support.pipeline import shared_service_env
from tests.support.processes import PROJECT_DIR, role_env, web_server
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

KB = 1000


class Wire(list):
    """The page's finished requests, and what they cost on the wire: request line and headers, response
    headers and body as sent (compressed where it was), as Chromium counted them."""

    def bytes_since(self, mark: int) -> tuple[int, list]:
        rows = [(request.url, sum(request.sizes().values())) for request in self[mark:]]
        return sum(size for _, size in rows), rows


@pytest.fixture(scope="module")
def production_web(live_system, tmp_path_factory):
    """A second web role beside the live system's: DEBUG off, after collectstatic, on the same stores."""
    base = tmp_path_factory.mktemp("production-web")
    env = {
        **shared_service_env(live_system.email_dir),
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "tests.browser.static_settings",
        "TEST_STATIC_ROOT": str(base / "static"),
        "SECRET_KEY": "test-only-secret-key-0123456789abcdef0123",
        "JWT_SIGNING_KEY": "test-only-jwt-key-0123456789abcdef012345",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",  # plain http on 127.0.0.1
    }
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=PROJECT_DIR,
        env=role_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    with web_server(base / "web.log", **env) as url:
        yield url


def open_jobs_page(page, base_url, user):
    class Live:
        def url(self, path):
            return base_url + path

    sign_in(page, Live(), user.email)


def test_the_jobs_page_stays_within_its_byte_budgets(page, production_web, capsys):
    user = user_create()
    # No queued job: the live system's sweeper would hand it to its converter, which would change it mid-minute.
    statuses = ["done"] * 10 + ["failed"] * 6 + ["cancelled"] * 2 + ["expired"] * 2
    for number, status in enumerate(statuses):
        job_create(
            owner=user,
            original_filename=f"weekly-meeting-{number:02d}.mp4",
            status=status,
            duration=1800.0,
            size=250_000_000,
            mp3_size=43_000_000 if status == "done" else None,
            mp3_duration=1800.0 if status == "done" else None,
            error="This video has no audio track, so there is nothing to convert to MP3." if status == "failed" else "",
        )
    # Signed in through the page, then the visit measured from a fresh navigation with an empty cache.
    open_jobs_page(page, production_web, user)
    wire = Wire()
    page.on("response", lambda response: wire.append(response.request))  # 304s included
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    page.goto(production_web + "/")
    expect(page.locator("li.job")).to_have_count(20)
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # its first poll, now
    page.wait_for_function(
        "() => performance.getEntriesByType('resource').some(e => e.name.includes('/api/jobs/?known='))"
    )
    page.wait_for_timeout(500)
    first_visit, rows = wire.bytes_since(0)
    assert not any(name.endswith("/mp3") for name, _ in rows), rows
    assert any("/static/videomp3/app." in name and len(name.rsplit("/", 1)[1].split(".")) > 2 for name, _ in rows), (
        f"static files without hashed names: {rows}"
    )
    assert first_visit < 250 * KB, (first_visit, rows)

    cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
    mark = len(wire)
    page.wait_for_timeout(60_000)
    idle_minute, idle_rows = wire.bytes_since(mark)
    assert idle_minute < 10 * KB, (idle_minute, idle_rows)

    # A conversion for a whole minute: its progress moves every second, as a converter reports it.
    # (A converting job without a lease is left alone by the sweeper.)
    converting = Job.objects.filter(owner=user, status="failed").first()
    Job.objects.filter(id=converting.id).update(status="converting", progress=1, error="")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # the poll sees it and goes fast
    stop = threading.Event()

    def report_progress():
        percent = 1
        while not stop.wait(1.0):
            percent = min(99, percent + 1)
            Job.objects.filter(id=converting.id).update(progress=percent)

    reporter = threading.Thread(target=report_progress, daemon=True)
    reporter.start()
    try:
        page.wait_for_timeout(2_000)  # the poll is on its fast pace
        mark = len(wire)
        started = time.monotonic()
        page.wait_for_timeout(60_000)
        converting_minute, converting_rows = wire.bytes_since(mark)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        reporter.join()
    expect(page.get_by_role("progressbar", name=f"Converting {converting.original_filename}")).to_be_visible()
    assert converting_minute < 100 * KB, (converting_minute, converting_rows)
    with capsys.disabled():
        print(
            f"\npage weight (DEBUG=0, 20 jobs): first visit {first_visit / KB:.1f} KB in {len(rows)} requests; "
            f"idle minute {idle_minute / KB:.1f} KB in {len(idle_rows)} polls; converting minute "
            f"{converting_minute / KB:.1f} KB in {len(converting_rows)} polls ({elapsed:.0f} s)"
        )
