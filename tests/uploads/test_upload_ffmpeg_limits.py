"""The web role's ffmpeg at upload within the web pod's own limits (k8s/base/web.yaml): 1 GiB of address
space per child, UPLOAD_FFMPEG_CONCURRENCY children per process at once."""

import threading
import time

import pytest

from core.media import ffmpeg
from tests.factories import uploaded_job
from tests.support import media
from uploads.services import intake

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_upload_is_extracted_and_its_cover_grabbed_within_the_web_pods_ffmpeg_limit(
    tmp_path, settings, mongodb, rabbitmq
):
    settings.FFMPEG_MEMORY_LIMIT_MB = 1024
    job = uploaded_job(media.make_media(tmp_path, "mp4_h264_aac_moov_end"))
    assert job.source_file_id and job.cover_file_id and job.status == "queued"


def test_uploads_take_turns_at_ffmpeg(tmp_path, settings, mongodb, rabbitmq, monkeypatch):
    """With one turn, two uploads arriving together never run their ffmpeg children at the same time."""
    settings.UPLOAD_FFMPEG_CONCURRENCY = 1
    monkeypatch.setattr(intake, "_ffmpeg_turns", None)  # made again from the setting
    running, most = 0, 0
    lock = threading.Lock()
    real_extract = ffmpeg.extract_audio

    def counted_extract(*args, **kwargs):  # the real extraction, counted while it runs
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(0.5)  # long enough that two uploads without turns would overlap here
            return real_extract(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(ffmpeg, "extract_audio", counted_extract)
    sources = [media.make_media(tmp_path / str(n), "mkv_vp9_opus", seconds=4.0 + n) for n in range(2)]
    errors = []

    def upload(path):
        try:
            uploaded_job(path)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(path,)) for path in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert most == 1
