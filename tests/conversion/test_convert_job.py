"""conversion.services.job_convert called directly, as the worker calls it for each message."""

import threading

import pytest

from conversion.services import ConversionHandedBack, job_convert
from core import broker, storage
from tests.factories import job_create, uploaded_job
from tests.support import audio_checks, media
from tests.support.pipeline import stored_file_count
from uploads import options as job_options
from uploads.models import Job

pytestmark = pytest.mark.django_db(transaction=True)


def queued_job(path) -> Job:
    """A job as queued before the audio source (#13): its uploaded video stored, no source or cover."""
    stored = storage.save_path(storage.VIDEOS, path, filename=path.name, content_type="application/octet-stream")
    return job_create(original_filename=path.name, size=stored.size, video_file_id=stored.file_id, duration=3.0)


def test_done_path_stores_the_mp3_queues_the_notification_and_discards_the_video(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_media(media_files, "wav_pcm"))
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    assert job.status == "done" and job.progress == 100 and job.attempts == 1
    assert job.mp3_file_id.startswith(f"mp3-{job.id}-") and job.mp3_size > 0
    assert abs(job.mp3_duration - 3.0) < 0.2
    assert job.video_file_id == "" and stored_file_count(storage.VIDEOS) == 0
    assert broker.queue_depth(broker.MP3) == 1


def test_keep_source_videos_keeps_the_video(mongodb, rabbitmq, media_files, settings):
    settings.KEEP_SOURCE_VIDEOS = True
    job = queued_job(media.make_media(media_files, "wav_pcm"))
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    assert job.video_file_id and storage.file_exists(storage.VIDEOS, job.video_file_id)


def test_a_redelivered_message_for_a_done_job_is_skipped(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_media(media_files, "wav_pcm"))
    job_convert(job_id=str(job.id))
    assert job_convert(job_id=str(job.id)) == "skipped"
    with pytest.raises(Job.DoesNotExist):  # an unknown job: the worker dead-letters its message
        job_convert(job_id="00000000-0000-0000-0000-000000000000")
    job.refresh_from_db()
    assert job.attempts == 1 and broker.queue_depth(broker.MP3) == 1


def test_a_media_error_fails_the_job_with_a_sentence_and_keeps_the_video(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_undecodable_audio(media_files))
    assert job_convert(job_id=str(job.id)) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and job.error.endswith(".") and "Traceback" not in job.error
    assert storage.file_exists(storage.VIDEOS, job.video_file_id)
    # No MP3; its `mp3` message asks the notifier for the "failed" email.
    assert stored_file_count(storage.MP3S) == 0 and broker.queue_depth(broker.MP3) == 1


def test_a_stopping_worker_hands_the_job_back(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_media(media_files, "wav_pcm", seconds=60.0))
    hand_back = threading.Event()
    hand_back.set()
    with pytest.raises(ConversionHandedBack):
        job_convert(job_id=str(job.id), hand_back=hand_back)
    job.refresh_from_db()
    assert job.status == "queued" and stored_file_count(storage.MP3S) == 0


def test_a_missing_source_video_fails_the_job(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_media(media_files, "wav_pcm"))
    storage.delete(storage.VIDEOS, job.video_file_id)
    assert job_convert(job_id=str(job.id)) == "failed"
    job.refresh_from_db()
    assert "upload it again" in job.error


def test_a_job_converts_from_its_audio_source_which_stays_for_another_conversion(mongodb, rabbitmq, media_files):
    job = uploaded_job(media.make_media(media_files, "mp4_h264_aac_moov_end"))
    assert job.source_file_id and job.cover_file_id and job.video_file_id == ""
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    assert job.status == "done" and abs(job.mp3_duration - 3.0) < 0.2
    assert storage.file_exists(storage.SOURCES, job.source_file_id)
    assert storage.file_exists(storage.SOURCES, job.cover_file_id)
    assert stored_file_count(storage.VIDEOS) == 0


def test_a_missing_audio_source_fails_the_job_with_a_sentence(mongodb, rabbitmq, media_files):
    job = uploaded_job(media.make_media(media_files, "mkv_vp9_opus"))
    storage.delete(storage.SOURCES, job.source_file_id)
    assert job_convert(job_id=str(job.id)) == "failed"
    job.refresh_from_db()
    assert job.error == "The uploaded file is no longer stored; upload it again."


@pytest.mark.parametrize(
    "options", [{}, {"cover": "false"}, {"normalize": "true"}], ids=["default", "no-cover", "loudnorm"]
)
def test_a_legacy_job_with_only_its_video_stored_converts_with_every_option(
    mongodb, rabbitmq, media_files, tmp_path, options
):
    """Jobs queued before the audio source (#13) name only their video: they still convert, cover included."""
    path = media.make_media(media_files, "mp4_h264_aac_moov_end")
    job = queued_job(path)
    Job.objects.filter(id=job.id).update(
        video_codec="h264",
        audio_streams=[{"codec": "aac", "channels": 1, "sample_rate": 44100, "language": None, "default": True}],
        options=job_options.parse_options(options, default_bitrate=192).canonical(),
    )
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    storage.copy_to_path(storage.MP3S, job.mp3_file_id, tmp_path / "out.mp3")
    covers = audio_checks.id3(tmp_path / "out.mp3").getall("APIC")
    assert bool(covers) is (options.get("cover") != "false")
