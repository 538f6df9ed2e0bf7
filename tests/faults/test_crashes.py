"""Fault injection against real worker processes on MariaDB/SQLite, RabbitMQ, SecantusDB and ffmpeg:
crashes at every phase, a poison message, and the file store going away. Each test restores what it stopped."""

import random
import re
import time
from collections import Counter

import pika
import pytest

from core import broker, storage
from tests.support import media
from tests.support.pipeline import read_emails, stored_files_and_orphan_chunks, wait_for_job
from tests.support.processes import manage_command, stop_process, wait_until
from tests.support.services import service_missing
from tests.support.uploads import upload, upload_unique
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONVERTER_PHASES = ("claimed", "reading", "converting", "writing", "committed")
# Points too short to hit from outside: the worker kills itself there (core/failpoints.py).
# "reading" became one since the video is streamed into ffmpeg: only the container's head is read there.
SELF_KILLED_PHASES = ("claimed", "reading", "committed")


def last_phase(log_path) -> str | None:
    phases = re.findall(r"phase=(\w+) job=", log_path.read_text(errors="replace"))
    return phases[-1] if phases else None


def assert_everything_done_once(job_ids, email_dir, timeout=240):
    deadline = time.monotonic() + timeout
    while Job.objects.filter(id__in=job_ids).exclude(status="done", notified_at__isnull=False).exists():
        stuck = list(Job.objects.filter(id__in=job_ids).exclude(status="done").values_list("status", "error")[:3])
        assert time.monotonic() < deadline, f"jobs not done and notified: {stuck}"
        time.sleep(0.5)
    assert stored_files_and_orphan_chunks(storage.MP3S) == (len(job_ids), 0)
    assert stored_files_and_orphan_chunks(storage.VIDEOS) == (0, 0)
    time.sleep(1)  # a duplicate email would arrive now
    sent = Counter(job_id for message in read_emails(email_dir) for job_id in job_ids if job_id in message.as_string())
    assert sent == Counter(job_ids), "each job must be emailed exactly once"


def test_converter_killed_in_every_phase_still_converts_every_job_once(
    fault_env, uploader, media_files, tmp_path, settings
):
    settings.QUOTA_QUEUED_JOBS_PER_USER = 0  # one user's 30 jobs in flight at once: a load, not a quota test
    job_ids = [upload_unique(uploader, media.make_media(media_files, "wav_pcm", seconds=60.0)) for _ in range(30)]
    rng = random.Random(20261128)
    landed: Counter[str] = Counter()
    kills = 0
    while kills < 10 or any(landed[phase] == 0 for phase in CONVERTER_PHASES):
        assert kills < 40, f"could not land a kill in every phase: {dict(landed)}"
        target = CONVERTER_PHASES[kills % len(CONVERTER_PHASES)]
        log_path = tmp_path / f"converter-{kills}.log"
        if target in SELF_KILLED_PHASES:
            converter = manage_command(["run_converter"], log_path, **fault_env, FAILPOINTS=target)
            assert converter.wait(timeout=120) == -9, log_path.read_text()[-2000:]
        else:
            converter = manage_command(["run_converter"], log_path, **fault_env)
            assert wait_until(
                lambda log_path=log_path, target=target: f"phase={target} " in log_path.read_text(), 120, 0.01
            )
            time.sleep(rng.uniform(0, 0.05))  # a seeded random moment inside (or just after) the phase
            converter.kill()
            converter.wait()
        landed[last_phase(log_path)] += 1
        kills += 1
    assert all(landed[phase] >= 1 for phase in CONVERTER_PHASES), dict(landed)
    print(f"{kills} kills landed in: {dict(landed)}")

    converter = manage_command(["run_converter"], tmp_path / "converter-final.log", **fault_env)
    notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **fault_env)
    try:
        assert_everything_done_once(job_ids, tmp_path / "emails")
        recovered = sum(Job.objects.filter(id__in=job_ids).values_list("recoveries", flat=True))
        # Every kill before the MP3 was written was recovered through its lease (a kill in "writing" may
        # land just after the commit, which needs no recovery).
        assert recovered >= landed["claimed"] + landed["reading"] + landed["converting"]
    finally:
        assert stop_process(converter) == 0
        assert stop_process(notifier) == 0


def test_notifier_killed_before_sending_and_after_recording_sends_one_email_each(
    fault_env, uploader, media_files, tmp_path
):
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **fault_env)  # its sweeper re-sends
    try:
        job_ids = [upload_unique(uploader, media.make_media(media_files, "wav_pcm")) for _ in range(3)]
        for job_id in job_ids:
            wait_for_job(job_id, lambda job: job.status == "done")
        for point in ("notify-claimed", "notify-recorded"):
            notifier = manage_command(
                ["run_notifier"], tmp_path / f"notifier-{point}.log", **fault_env, FAILPOINTS=point
            )
            assert notifier.wait(timeout=60) == -9
            assert f"phase={point} " in (tmp_path / f"notifier-{point}.log").read_text()
        notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **fault_env)
        try:
            assert_everything_done_once(job_ids, tmp_path / "emails", timeout=60)
        finally:
            assert stop_process(notifier) == 0
    finally:
        assert stop_process(converter) == 0


def test_poison_messages_are_dead_lettered_once_and_the_worker_goes_on(
    fault_env, uploader, media_files, tmp_path, rabbitmq
):
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **fault_env)
    try:
        broker.declare_queues()
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
        channel = connection.channel()
        for body in (
            b"{not json",
            b'{"v": 99, "job_id": "x"}',
            b'{"v": 1, "job_id": "00000000-0000-0000-0000-000000000000"}',
        ):
            channel.basic_publish("", broker.queue_name(broker.VIDEO), body, pika.BasicProperties(delivery_mode=2))
        connection.close()
        job_id = upload_unique(uploader, media.make_media(media_files, "wav_pcm"))
        assert wait_for_job(job_id, lambda job: job.status == "done").status == "done"
        assert wait_until(lambda: broker.queue_depth("video.dead") == 3, 20)
        time.sleep(2)
        assert broker.queue_depth("video.dead") == 3 and broker.queue_depth(broker.VIDEO) == 0
    finally:
        assert stop_process(converter) == 0


def test_file_store_down_during_a_conversion_then_back_the_job_completes(
    fault_env, uploader, media_files, tmp_path, secantus_server
):
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **fault_env)
    try:
        job_id = upload_unique(uploader, media.make_media(media_files, "opus_long_lowrate", seconds=900.0))
        wait_for_job(job_id, lambda job: job.status == "converting" and job.progress > 0, timeout=60)
        secantus_server.stop()
        try:
            # Down for longer than the rest of the conversion: storing the MP3 must fail, then be retried.
            assert wait_until(lambda: Job.objects.get(id=job_id).transient_failures >= 1, 60)
        finally:
            secantus_server.start()
        job = wait_for_job(job_id, lambda job: job.status in ("done", "failed"), timeout=120)
        assert job.status == "done", job.error
        assert job.transient_failures >= 1 and job.error == ""
        assert stored_files_and_orphan_chunks(storage.MP3S) == (1, 0)
    finally:
        assert stop_process(converter) == 0


def test_file_store_down_at_upload_is_503_and_stores_nothing(fault_env, uploader, media_files, secantus_server):
    path = media.make_media(media_files, "wav_pcm")
    secantus_server.stop()
    try:
        storage.reset_client()
        response = upload(uploader, path)
        assert response.status_code == 503
        assert "unreachable" in response.json()["detail"]
        assert Job.objects.count() == 0
        assert broker.queue_depth(broker.VIDEO) == 0
    finally:
        secantus_server.start()
        storage.reset_client()


def unacknowledged(queue: str) -> int:
    """Unacknowledged deliveries of a queue on the machine's broker, as RabbitMQ itself counts them."""
    import subprocess

    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "name", "messages_unacknowledged"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    counts = dict(line.split("\t") for line in listing.splitlines()[1:] if "\t" in line)
    return int(counts[broker.queue_name(queue)])


def test_a_long_conversion_holds_no_unacknowledged_message(fault_env, uploader, media_files, tmp_path):
    """The claim is acknowledged at once, so RabbitMQ's consumer timeout can never cut a conversion short."""
    import shutil

    if shutil.which("rabbitmqctl") is None:
        service_missing("rabbitmqctl is not installed; the machine's RabbitMQ cannot be inspected")
    converter = manage_command(["run_converter"], tmp_path / "converter.log", **fault_env)
    try:
        job_id = upload_unique(uploader, media.make_media(media_files, "opus_long_lowrate", seconds=900.0))
        wait_for_job(job_id, lambda job: job.status == "converting" and job.progress > 0, timeout=60)
        assert unacknowledged(broker.VIDEO) == 0
        assert broker.queue_depth(broker.VIDEO) == 0
        assert wait_for_job(job_id, lambda job: job.status == "done", timeout=120).attempts == 1
    finally:
        assert stop_process(converter) == 0
