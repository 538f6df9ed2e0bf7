"""A failed job's sentence is in its owner's words (issue #19 item 9): what happened and what to do,
never ffmpeg's own ("Error while decoding stream #0:0: Invalid data found ..."), which goes to the
operators' log with the job's id; and an audio file is never called a video. Real damaged files, made
with ffmpeg, through the real intake (uploaded_job) and conversion (job_convert)."""

import logging
import os
import random
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from conversion.services import job_convert
from core import storage
from core.media import ffmpeg, probe
from tests.factories import job_create, uploaded_job
from tests.support import media
from uploads.models import Job
from uploads.services import leases

pytestmark = pytest.mark.django_db(transaction=True)

# ffmpeg's words, and the codec and stream names it prints, that mean nothing to the owner of a file.
JARGON = ("ffmpeg", "stream #", "#0:", "Error while", "Invalid data found", "Operation not permitted", "aac", "h264")


def assert_plain(sentence: str) -> None:
    assert sentence.endswith(".") and "\n" not in sentence, sentence
    for word in JARGON:
        assert word.lower() not in sentence.lower(), f"{word!r} in {sentence!r}"


def overwritten(directory: Path, kind: str, *, start: float, end: float) -> Path:
    """A make_media file whose bytes from `start` to `end` (fractions of its size) are noise: its
    index survives, so it probes and uploads, but most of its audio cannot be decoded."""
    source = media.make_media(directory, kind)
    target = Path(directory) / f"overwritten-{start:g}-{end:g}-{source.name}"
    if not target.exists():
        data = bytearray(source.read_bytes())
        first, last = int(len(data) * start), int(len(data) * end)
        data[first:last] = random.Random(target.name).randbytes(last - first)
        target.write_bytes(bytes(data))
    return target


def failed(job: Job) -> Job:
    assert job_convert(job_id=str(job.id)) == "failed"
    job.refresh_from_db()
    assert job.status == "failed"
    return job


def test_a_video_damaged_in_the_middle_fails_with_a_plain_sentence_and_ffmpeg_is_logged(
    mongodb, rabbitmq, media_files, caplog
):
    job = uploaded_job(overwritten(media_files, "mp4_faststart", start=0.05, end=0.99))
    assert job.video_codec  # a video: it probed, and its audio was copied out at upload
    with caplog.at_level(logging.WARNING, logger="conversion.services"):
        job = failed(job)
    assert_plain(job.error)
    assert "damaged" in job.error and "Re-export" in job.error
    logged = [record.getMessage() for record in caplog.records if str(job.id) in record.getMessage()]
    assert any("Error while decoding" in message for message in logged), logged


@pytest.mark.parametrize("normalize", [False, True], ids=["encoding", "measuring loudness"])
def test_a_damaged_audio_file_is_not_called_a_video(mongodb, rabbitmq, media_files, normalize):
    options = {"normalize": "true"} if normalize else {}
    job = uploaded_job(media.make_damaged_m4a(media_files, damage="all"), **options)
    assert not job.video_codec
    job = failed(job)
    assert_plain(job.error)
    assert "video" not in job.error.lower()


def test_the_time_limit_sentence_is_plain_and_calls_no_audio_file_a_video(tmp_path):
    stalled = tmp_path / "stalled.m4a"
    os.mkfifo(stalled)  # ffmpeg waits on it for ever
    with pytest.raises(ffmpeg.MediaError) as refused:
        ffmpeg.convert_to_mp3(stalled, tmp_path / "out.mp3", duration=3.0, limits=ffmpeg.ChildLimits(wall_seconds=1))
    assert refused.value.code == "too_slow"
    assert_plain(str(refused.value))
    assert "video" not in str(refused.value).lower()


def test_a_file_with_neither_audio_nor_video_is_not_called_a_video(tmp_path):
    subtitles = tmp_path / "words.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    only_subtitles = tmp_path / "words.mkv"
    subprocess.run(
        [ffmpeg.ffmpeg_path(), "-nostdin", "-v", "error", "-i", str(subtitles), "-c:s", "srt", str(only_subtitles)],
        check=True,
    )
    with pytest.raises(ffmpeg.MediaError) as refused:
        probe.probe(only_subtitles)
    assert refused.value.code == "no_audio" and "video" not in str(refused.value).lower()


def test_a_store_failing_past_its_retries_fails_the_job_without_naming_the_store(mongodb, rabbitmq, caplog):
    job = job_create(
        status=Job.Status.CONVERTING, lease_owner="attempt", transient_failures=settings.MAX_TRANSIENT_RETRIES
    )
    with caplog.at_level(logging.WARNING, logger="uploads.services.leases"):
        assert leases.job_retry_later(job_id=job.id, lease_owner="attempt", reason=storage.UNREACHABLE) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "MongoDB" not in job.error and "in a minute" not in job.error
    assert "Retry" in job.error
    assert any(str(job.id) in r.getMessage() and storage.UNREACHABLE in r.getMessage() for r in caplog.records)
