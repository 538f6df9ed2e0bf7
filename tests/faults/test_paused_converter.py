"""A converter frozen (SIGSTOP, as in a VM pause) while it writes its MP3, whose job another converter
then finishes: when it wakes up it must not touch the finished MP3. Real processes throughout."""

import signal
import time
from pathlib import Path

import pytest

from core import storage
from core.media import probe
from tests.support import media
from tests.support.pipeline import stored_files_and_orphan_chunks, wait_for_job
from tests.support.processes import manage_command, stop_process, wait_until
from tests.support.uploads import upload_unique
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _stopped(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "T"


def test_a_paused_converter_that_wakes_up_late_leaves_the_finished_mp3_alone(
    fault_env, uploader, media_files, tmp_path
):
    paused_log, other_log = tmp_path / "paused.log", tmp_path / "other.log"
    paused = manage_command(["run_converter"], paused_log, **fault_env, FAILPOINTS="writing=stop")
    other = None
    try:
        job_id = upload_unique(uploader, media.make_media(media_files, "wav_pcm", seconds=20.0))
        # The first converter encodes the MP3, reaches its write and freezes there, lease thread and all.
        assert wait_until(lambda: "phase=writing" in paused_log.read_text() and _stopped(paused.pid), 60), (
            paused_log.read_text()[-3000:]
        )
        other = manage_command(["run_converter"], other_log, **fault_env)
        job = wait_for_job(job_id, lambda j: j.status == "done", timeout=60)
        assert job.recoveries == 1 and job.attempts == 2  # the sweeper took it from the frozen attempt
        finished_mp3 = job.mp3_file_id

        paused.send_signal(signal.SIGCONT)
        # It writes an MP3 of its own, is refused as done, and removes only that.
        assert wait_until(lambda: "cancelled or taken over" in paused_log.read_text(), 30), paused_log.read_text()[
            -3000:
        ]
        time.sleep(1)
        job = Job.objects.get(id=job_id)
        assert job.status == "done" and job.mp3_file_id == finished_mp3
        assert stored_files_and_orphan_chunks(storage.MP3S) == (1, 0)
        mp3 = tmp_path / "kept.mp3"
        storage.copy_to_path(storage.MP3S, finished_mp3, mp3)
        assert abs(probe.media_duration(mp3) - 20.0) < 0.2
        download = uploader.get("/download", {"fid": finished_mp3})
        assert download.status_code == 200
    finally:
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
        stop_process(paused)
        if other is not None:
            stop_process(other)
