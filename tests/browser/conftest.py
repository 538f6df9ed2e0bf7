"""One live system per test module, driven by headless Chromium.

gunicorn (the web role), run_converter and run_notifier run as real processes against the test
database, a private MongoDB database on the session's SecantusDB server and private RabbitMQ queues.
Starting them once per module (rather than per test) keeps the suite quick; each test still gets its
own user and a database emptied after it (django_db(transaction=True)).
"""

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.test import override_settings

from core.media.ffmpeg import ffmpeg_path
from tests.support import media
from tests.support.pipeline import shared_service_env
from tests.support.processes import PROJECT_DIR, manage_command, stop_process, web_server
from tests.support.services import service_missing

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where the run leaves the screenshots that the README shows.
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR") or PROJECT_DIR / "docs" / "screenshots")
# Small enough that a "too large" file is cheap to make, large enough for the long test recording.
MAX_UPLOAD_SIZE = 25 * 1024 * 1024


@dataclass
class LiveSystem:
    base_url: str
    email_dir: Path
    log_dir: Path
    media_dir: Path
    processes: dict = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.log_dir.glob("*.log"))
        )


@pytest.fixture(scope="module")
def live_system(django_db_setup, secantus_server, rabbitmq_url, tmp_path_factory):
    """The web role, the converter and the notifier, started once for the module."""
    from core import broker, storage

    base = tmp_path_factory.mktemp("browser")
    overrides = override_settings(
        MONGODB_URI=secantus_server.uri,
        MONGODB_DB=f"test_{uuid.uuid4().hex[:12]}",
        AMQP_URL=rabbitmq_url,
        QUEUE_PREFIX=f"test-{uuid.uuid4().hex[:10]}-",
        MAX_UPLOAD_SIZE=MAX_UPLOAD_SIZE,
    )
    overrides.enable()
    storage.reset_client()
    broker.reset()
    email_dir = base / "emails"
    env = {
        **shared_service_env(email_dir),
        "MAX_UPLOAD_SIZE": str(MAX_UPLOAD_SIZE),
        "REGISTRATION_OPEN": "1",
        # The webhook page's test registers a receiver on 127.0.0.1, and the notifier delivers to it.
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1",
    }
    try:
        # The roles reach the test database through DATABASE_URL (role_env); this process needs no access here.
        converter = manage_command(["run_converter"], base / "converter.log", **env)
        notifier = manage_command(["run_notifier"], base / "notifier.log", **env)
        try:
            with web_server(base / "web.log", **env) as url:
                yield LiveSystem(
                    url,
                    email_dir,
                    base,
                    tmp_path_factory.getbasetemp() / "media",
                    {"converter": converter, "notifier": notifier},
                )
        finally:
            codes = {
                name: stop_process(process) for name, process in (("converter", converter), ("notifier", notifier))
            }
        assert codes == {"converter": 0, "notifier": 0}, (
            f"a worker did not stop cleanly: {codes}\n{(base / 'converter.log').read_text()[-2000:]}"
        )
    finally:
        try:
            broker.delete_queues()
            storage.drop_database()
        finally:
            storage.reset_client()
            broker.reset()
            overrides.disable()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        service_missing(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread, which makes Django refuse ORM calls
    # ("async context"). The tests' own database reads are plain synchronous code, so allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    expect.set_options(timeout=15_000)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class BrowserProblems(list):
    """JavaScript errors and Content-Security-Policy violations seen by a page: a test fails on any."""


@pytest.fixture
def page(browser, live_system):
    context = browser.new_context(viewport={"width": 1100, "height": 820}, accept_downloads=True, locale="en-US")
    context.set_default_timeout(20_000)
    problems = BrowserProblems()
    tab = context.new_page()
    tab.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if "Content Security Policy" in message.text else None
        ),
    )
    tab.problems = problems
    # Turn on file-chooser interception now: expect_file_chooser() turns it on asynchronously, and a chooser
    # opened by a key press right after can otherwise slip past it (seen with Enter on "Choose videos…").
    tab.on("filechooser", lambda chooser: None)
    yield tab
    context.close()
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)


def screenshot(page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    # From the top, with the pointer parked where it hovers nothing, as a person would first see the page.
    page.evaluate("window.scrollTo(0, 0)")
    page.mouse.move(0, page.viewport_size["height"] - 1)
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path


# ---- media with names a person would upload -------------------------------------------------------


def named_media(directory: Path, kind: str, name: str, *, seconds: float = 3.0) -> Path:
    """A generated media file (tests.support.media) under a realistic file name."""
    source = media.make_media(directory, kind, seconds=seconds)
    target = directory / "named" / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def long_recording(directory: Path, name: str = "lecture-recording.mkv", minutes: int = 80) -> Path:
    """A long Opus recording (minutes of audio, a few MB) that takes the converter several seconds.

    One minute is encoded, then repeated by stream copy, so making it costs well under a second.
    """
    target = directory / "named" / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    piece = directory / "opus-minute.mkv"
    run = [ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if not piece.exists():
        subprocess.run(
            [
                *run,
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=330:sample_rate=48000:duration=60",
                "-c:a",
                "libopus",
                "-b:a",
                "16k",
                "-f",
                "matroska",
                str(piece),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    partial = target.with_suffix(".partial")
    subprocess.run(
        [*run, "-stream_loop", str(minutes - 1), "-i", str(piece), "-c", "copy", "-f", "matroska", str(partial)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    partial.rename(target)
    return target
