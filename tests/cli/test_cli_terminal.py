"""`videomp3` on a real terminal: tmux runs a shell, the test types the commands, and reads the screen.

The session is also the README's recorded terminal screenshot: the final screen (with its colours) is
rendered to SVG by rich and to PNG by Chromium, under docs/screenshots/ like the browser tests' pictures."""

import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import CLI, video_folder
from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support.processes import PROJECT_DIR
from tests.support.services import service_missing

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOT = PROJECT_DIR / "docs" / "screenshots" / "cli-convert.png"
COLUMNS, ROWS = 118, 27


class Terminal:
    def __init__(self, cwd: Path, env: dict[str, str]):
        self.socket = f"videomp3-test-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{name}={value!s}" for name, value in env.items())
        subprocess.run(
            [
                *self._tmux(),
                "new-session",
                "-d",
                "-x",
                str(COLUMNS),
                "-y",
                str(ROWS),
                "-c",
                str(cwd),
                f"env -i HOME={cwd} TERM=xterm-256color {exports} PS1='$ ' bash --norc --noprofile",
            ],
            check=True,
        )

    def _tmux(self) -> list[str]:
        return ["tmux", "-L", self.socket, "-f", "/dev/null"]

    def type(self, text: str) -> None:
        subprocess.run([*self._tmux(), "send-keys", "-l", text], check=True)
        subprocess.run([*self._tmux(), "send-keys", "Enter"], check=True)

    def screen(self, *, colours: bool = False) -> str:
        args = [*self._tmux(), "capture-pane", "-p", *(["-e"] if colours else [])]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in (screen := self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared on the terminal:\n{screen}")
            time.sleep(0.2)
        return screen

    def wait_for_prompt(self, timeout: float = 60) -> None:
        """Until the shell waits for a command: typing earlier would echo the line twice on the screen."""
        deadline = time.monotonic() + timeout
        while [line for line in self.screen().splitlines() if line.strip()][-1:] != ["$"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt on the terminal:\n{self.screen()}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run([*self._tmux(), "kill-server"], check=False)


def save_screenshot(ansi_screen: str, path: Path, title: str) -> None:
    """The screen as the terminal showed it: rich turns its ANSI colours into an SVG, Chromium into a PNG."""
    from playwright.sync_api import sync_playwright
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=COLUMNS, force_terminal=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(Text.from_ansi(ansi_screen.rstrip() + "\n"))
    svg = console.export_svg(title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 400}, device_scale_factor=1)
        page.set_content(f"<html><body style='margin:0'>{svg}</body></html>")
        page.locator("svg").screenshot(path=str(path))
        browser.close()


def test_a_terminal_shows_bars_and_a_summary_table(stack, media_files, tmp_path):
    if shutil.which("tmux") is None:
        service_missing("tmux is not installed (Debian: apt-get install tmux)")
    email = "demo@example.com"
    user_create(email=email)
    video_folder(
        tmp_path / "recordings",
        media_files,
        {
            "standup-monday.mp4": "mp4_h264_aac_moov_end",
            "interview.mkv": "mkv_vp9_opus",
            "voice-memo.wav": "wav_pcm",
            "screen-capture.mp4": "mp4_no_audio",
        },
    )
    bin_dir = CLI.parent
    terminal = Terminal(tmp_path, {"PATH": f"{bin_dir}:/usr/bin:/bin", "XDG_CONFIG_HOME": tmp_path / "config"})
    try:
        terminal.wait_for_prompt()
        terminal.type(f"videomp3 login --server {stack.base_url} --email {email}")
        terminal.wait_for("Password:")
        terminal.type(DEFAULT_PASSWORD)
        terminal.wait_for("Signed in to")
        terminal.wait_for_prompt()
        terminal.type("videomp3 convert recordings --jobs 2")
        terminal.wait_for("1 failed")
        terminal.wait_for_prompt()
        terminal.type("echo exit=$?")
        screen = terminal.wait_for("exit=1")
        coloured = terminal.screen(colours=True)
    finally:
        terminal.close()
    assert DEFAULT_PASSWORD not in screen  # asked without echo
    # The bars' last state, then the summary table with the server's sentence for the failure.
    assert screen.count("videomp3 convert recordings") == 1
    assert "━" in screen and "100%" in screen
    assert "Summary" in screen and "┃ file" in screen.replace("┃ file ", "┃ file")
    for name in ("standup-monday.mp4", "interview.mkv", "voice-memo.wav"):
        assert any(name in line and "converted" in line for line in screen.splitlines()), screen
    assert any("screen-capture.mp4" in line and "no audio track" in line for line in screen.splitlines()), screen
    assert "3 converted, 0 reused, 0 skipped, 1 failed" in screen
    assert sorted(p.name for p in (tmp_path / "recordings").glob("*.mp3")) == [
        "interview.mp3",
        "standup-monday.mp3",
        "voice-memo.mp3",
    ]
    session = coloured.splitlines()
    shown = session[: next(n for n, line in enumerate(session) if "echo exit" in line)]
    save_screenshot("\n".join([*shown, "$ "]), SCREENSHOT, "videomp3 convert")
    assert SCREENSHOT.stat().st_size > 10_000
