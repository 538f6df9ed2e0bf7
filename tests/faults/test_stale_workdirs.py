"""A converter killed mid-job leaves its temp directory; the next role to start removes it, but never
the directory of a process still working, though they share one temp dir. Real processes."""

import os
import signal
import time

import pytest

from core import workdirs
from tests.support import media
from tests.support.pipeline import wait_for_job
from tests.support.processes import manage_command, stop_process, wait_until
from tests.support.uploads import upload_unique

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_killed_converters_temp_dir_goes_when_the_next_one_starts(fault_env, uploader, media_files, tmp_path):
    shared = tmp_path / "tmp"
    shared.mkdir()
    env = {**fault_env, "CONVERSION_TEMP_DIR": str(shared)}
    log = tmp_path / "first.log"
    first = manage_command(["run_converter"], log, **env, FAILPOINTS="converting=pause:120")
    second = None
    try:
        job_id = upload_unique(uploader, media.make_media(media_files, "wav_pcm", seconds=10.0))
        assert wait_until(lambda: "phase=converting" in log.read_text(), 60), log.read_text()[-2000:]
        first.send_signal(signal.SIGKILL)
        first.wait()
        (left,) = list(shared.glob("videomp3-work-convert-*"))
        assert (left / "source").exists()  # the downloaded audio, never cleaned up by the dead process
        with workdirs.locked_temp_dir("convert", parent=str(shared)) as busy:  # a live process's directory
            second = manage_command(["run_converter"], tmp_path / "second.log", **env)
            assert wait_until(lambda: not left.exists(), 30)
            assert busy.exists()
            assert wait_for_job(job_id, lambda j: j.status == "done", timeout=60).recoveries == 1
        assert not list(shared.glob("videomp3-work-*"))  # the second converter's own went with its job
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)


def test_only_unlocked_directories_are_stale(tmp_path):
    with workdirs.locked_temp_dir("extract", parent=str(tmp_path)) as live:
        dead = tmp_path / "videomp3-work-extract-dead"
        dead.mkdir()
        (dead / ".lock").touch()  # its process died: nobody holds the lock
        creating = tmp_path / "videomp3-work-convert-new"
        creating.mkdir()  # no lock file yet: a process may be creating it right now
        unrelated = tmp_path / "someone-else"
        unrelated.mkdir()
        ours_but_no_workdir = tmp_path / "videomp3-rabbitmq-node"  # e.g. a test's private broker
        ours_but_no_workdir.mkdir()
        long_ago = time.time() - 3600  # past the grace given to a directory with no lock file yet
        os.utime(ours_but_no_workdir, (long_ago, long_ago))
        assert workdirs.remove_stale(str(tmp_path)) == 1
        assert live.exists() and creating.exists() and unrelated.exists() and not dead.exists()
        assert ours_but_no_workdir.exists()
    assert not live.exists()
