"""ffmpeg runs with a minimal environment: none of the role's secrets reach the process that parses uploads."""

import os
from pathlib import Path

import pytest

from core.media import ffmpeg

SECRETS = {
    "SECRET_KEY": "secret-key-that-must-stay-in-the-role",
    "DATABASE_URL": "mysql://videomp3:database-password-here@db:3306/videomp3",
    "AMQP_URL": "amqp://videomp3:broker-password-here@rabbitmq:5672/%2F",
    "EMAIL_HOST_PASSWORD": "smtp-password-here",
}


def _running_ffmpeg_children() -> list[int]:
    """This process's children whose program is ffmpeg (after setpriv and prlimit have exec'd it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            program = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and Path(os.fsdecode(program)).name.startswith("ffmpeg"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_a_running_ffmpeg_holds_no_secret_of_the_role(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # A FIFO nobody writes to: ffmpeg, started by the converter's own code path, waits on it for as
    # long as the test needs to read its environment.
    source = tmp_path / "never-written.wav"
    os.mkfifo(source)
    seen: dict[str, bytes] = {}

    def read_environment_then_cancel() -> bool:
        for pid in _running_ffmpeg_children():
            seen["environ"] = Path(f"/proc/{pid}/environ").read_bytes()
        return "environ" in seen

    with pytest.raises(ffmpeg.FfmpegCancelled):
        ffmpeg.convert_to_mp3(source, tmp_path / "out.mp3", duration=60.0, should_cancel=read_environment_then_cancel)
    variables = dict(item.split(b"=", 1) for item in seen["environ"].split(b"\0") if b"=" in item)
    for name, value in SECRETS.items():
        assert name.encode() not in variables and value.encode() not in seen["environ"], name
    assert set(variables) <= {name.encode() for name in ffmpeg.CHILD_ENVIRONMENT}
    assert variables[b"PATH"] == os.environ["PATH"].encode()
