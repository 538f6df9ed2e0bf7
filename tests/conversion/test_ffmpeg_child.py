"""How ffmpeg is started: never with preexec_fn (unsafe in the threaded processes every role is), yet it
still runs inside its limits and dies with the process that started it, even from a worker thread."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.media import ffmpeg, probe
from tests.support import media
from tests.support.processes import PROJECT_DIR, wait_until


def test_no_ffmpeg_or_ffprobe_run_uses_preexec_fn(media_dir, tmp_path, monkeypatch):
    started = []
    real_popen = subprocess.Popen

    def spy(*args, **kwargs):
        started.append(kwargs.get("preexec_fn"))
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    video = media.make_media(media_dir, "mp4_h264_aac_moov_end")
    info = probe.probe(video)
    assert ffmpeg.extract_audio(video, tmp_path / "audio.mov", container=info.container)
    assert ffmpeg.grab_frame(video, tmp_path / "cover.jpg", at=1.0)
    ffmpeg.convert_to_mp3(tmp_path / "audio.mov", tmp_path / "out.mp3", duration=info.duration)
    assert len(started) >= 4 and started == [None] * len(started)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _ffmpeg_children(pid: int) -> list[int]:
    """pid's children running ffmpeg (a test run has others, such as the SecantusDB server)."""
    found = []
    for child in _children(pid):
        try:
            if b"ffmpeg" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]:
                found.append(child)
        except FileNotFoundError:
            pass
    return found


def _limits(pid: int) -> dict[str, str]:
    rows = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {row[:26].strip(): row[26:47].strip() for row in rows}


def test_ffmpeg_started_from_a_thread_runs_inside_its_limits(tmp_path):
    stalled = tmp_path / "stalled.wav"
    os.mkfifo(stalled)  # nobody writes: ffmpeg waits there until it is stopped
    limits = ffmpeg.ChildLimits(wall_seconds=60, cpu_seconds=77, memory_bytes=1536 * 1024 * 1024)
    stop = threading.Event()
    worker = threading.Thread(
        target=lambda: pytest.raises(
            ffmpeg.FfmpegCancelled,
            ffmpeg.convert_to_mp3,
            stalled,
            tmp_path / "out.mp3",
            duration=3.0,
            should_cancel=stop.is_set,
            limits=limits,
        ),
        daemon=True,
    )
    worker.start()
    try:
        child = wait_until(lambda: _ffmpeg_children(os.getpid()), 10)
        assert child, "ffmpeg did not start"
        seen = _limits(child[0])
        assert seen["Max cpu time"] == "77" and seen["Max address space"] == str(1536 * 1024 * 1024)
    finally:
        stop.set()
        worker.join(20)


def test_ffmpeg_dies_with_the_process_that_started_it_from_a_thread(tmp_path):
    stalled = tmp_path / "stalled.wav"
    os.mkfifo(stalled)
    script = textwrap.dedent(
        f"""
        import threading, time
        from core.media import ffmpeg
        threading.Thread(
            target=ffmpeg.convert_to_mp3, args=({str(stalled)!r}, {str(tmp_path / "out.mp3")!r}),
            kwargs={{"duration": 3.0}}, daemon=True,
        ).start()
        time.sleep(600)
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_DIR)
    try:
        child = wait_until(lambda: _ffmpeg_children(worker.pid), 20)
        assert child, "ffmpeg did not start"
        ffmpeg_pid = child[0]
        worker.send_signal(signal.SIGKILL)  # no chance to clean up: only the kernel can stop ffmpeg now
        worker.wait()
        assert wait_until(lambda: not Path(f"/proc/{ffmpeg_pid}").exists() or _zombie(ffmpeg_pid), 10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_wall_clock_limit_still_applies(tmp_path):
    stalled = tmp_path / "stalled.wav"
    os.mkfifo(stalled)
    started = time.monotonic()
    with pytest.raises(ffmpeg.MediaError) as refused:
        ffmpeg.convert_to_mp3(stalled, tmp_path / "out.mp3", duration=3.0, limits=ffmpeg.ChildLimits(wall_seconds=1))
    assert refused.value.code == "too_slow" and time.monotonic() - started < 15
