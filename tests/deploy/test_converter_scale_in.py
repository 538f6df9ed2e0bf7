"""A converter pod scaled in or rolled during a long conversion, as real processes: run_converter gets
SIGTERM mid-conversion (what the kubelet sends), hands the job back once (counted in `recoveries`), and
a converter stopped during the restarted conversion finishes it instead of handing it back again."""

import signal

import pytest

from core import storage
from tests.support import media
from tests.support.pipeline import shared_service_env, stored_files_and_orphan_chunks, wait_for_job
from tests.support.processes import manage_command, stop_process
from tests.support.uploads import upload
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Converts in several seconds here: long enough to be signalled mid-conversion.
LONG_SECONDS = 1800.0


def _converting(attempt: int):
    return lambda job: job.status == Job.Status.CONVERTING and job.attempts == attempt and job.progress > 0


def _stopped(converter, log_path) -> None:
    """SIGTERM, as the kubelet sends it, then the exit code of a clean stop."""
    converter.send_signal(signal.SIGTERM)
    code = converter.wait(timeout=180)
    assert code == 0, f"the converter exited {code} on SIGTERM:\n{log_path.read_text()[-3000:]}"


def test_a_conversion_stopped_twice_by_scale_in_is_restarted_once_and_done_once(
    mongodb, rabbitmq, alice, media_files, tmp_path
):
    # No grace before the hand-back: the first stop gives the job back at once.
    env = {**shared_service_env(tmp_path / "emails"), "SHUTDOWN_GRACE_SECONDS": "0"}
    job_id = upload(alice, media.make_media(media_files, "opus_long_lowrate", seconds=LONG_SECONDS)).json()["id"]

    first_log = tmp_path / "converter-1.log"
    first = manage_command(["run_converter"], first_log, **env)
    try:
        wait_for_job(job_id, _converting(1), timeout=60)
        _stopped(first, first_log)
    finally:
        stop_process(first)
    job = Job.objects.get(id=job_id)
    assert (job.status, job.attempts, job.recoveries) == (Job.Status.QUEUED, 1, 1), "handed back, and counted"

    second_log = tmp_path / "converter-2.log"
    second = manage_command(["run_converter"], second_log, **env)
    try:
        wait_for_job(job_id, _converting(2), timeout=60)
        _stopped(second, second_log)
    finally:
        stop_process(second)
    assert "finishing it before this worker exits" in second_log.read_text(), "stopped mid-conversion"

    job = Job.objects.get(id=job_id)
    # Restarted once for the stops, converted to the end by the second stopping converter.
    assert (job.status, job.attempts, job.recoveries) == (Job.Status.DONE, 2, 1), job.error
    assert stored_files_and_orphan_chunks(storage.MP3S) == (1, 0)  # exactly one MP3, nothing half-written
    assert storage.file_exists(storage.MP3S, job.mp3_file_id)
