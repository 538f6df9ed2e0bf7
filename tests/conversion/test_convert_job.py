"""conversion.services.job_convert called directly, as the worker calls it for each message."""

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversion.services import ConversionHandedBack, job_convert
from tests.factories import user_create
from tests.support import media
from tests.support.pipeline import stored_file_count
from uploads import services as job_services
from uploads import storage
from uploads.models import Job
from videomp3 import broker

pytestmark = pytest.mark.django_db(transaction=True)


def queued_job(path) -> Job:
    stored = storage.save_path(storage.VIDEOS, path, filename=path.name, content_type="application/octet-stream")
    return Job.objects.create(
        owner=user_create(), original_filename=path.name, size=stored.size, video_file_id=stored.file_id, duration=3.0
    )


def test_done_path_stores_the_mp3_queues_the_notification_and_discards_the_video(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_media(media_files, "wav_pcm"))
    assert job_convert(job_id=str(job.id)) == "done"
    job.refresh_from_db()
    assert job.status == "done" and job.progress == 100 and job.attempts == 1
    assert job.mp3_file_id == job_services.mp3_file_id_for(job.id) and job.mp3_size > 0
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
    with pytest.raises(broker.RejectMessage):  # an unknown job: the message goes to the dead-letter queue
        job_convert(job_id="00000000-0000-0000-0000-000000000000")
    job.refresh_from_db()
    assert job.attempts == 1 and broker.queue_depth(broker.MP3) == 1


def test_a_media_error_fails_the_job_with_a_sentence_and_keeps_the_video(mongodb, rabbitmq, media_files):
    job = queued_job(media.make_undecodable_audio(media_files))
    assert job_convert(job_id=str(job.id)) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and job.error.endswith(".") and "Traceback" not in job.error
    assert storage.file_exists(storage.VIDEOS, job.video_file_id)
    assert stored_file_count(storage.MP3S) == 0 and broker.queue_depth(broker.MP3) == 0


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


@pytest.mark.parametrize(
    ("options", "streamed"),
    [({}, False), ({"cover": "false"}, True), ({"cover": "false", "normalize": "true"}, False)],
    ids=["cover-frame", "one-pass", "loudnorm"],
)
def test_a_one_pass_job_streams_its_video_and_a_job_with_more_passes_downloads_it(
    mongodb, rabbitmq, media_files, monkeypatch, options, streamed
):
    """A cover frame or a loudness measurement reads the video again, so it must be on disk first."""
    from conversion import options as conversion_options
    from conversion import staging

    staged = []
    real_stage_source = staging.stage_source

    def spy(*args, **kwargs):
        source = real_stage_source(*args, **kwargs)
        staged.append(source)
        return source

    monkeypatch.setattr(staging, "stage_source", spy)
    path = media.make_media(media_files, "mkv_vp9_opus")
    upload = SimpleUploadedFile(path.name, path.read_bytes())
    parsed = conversion_options.parse_options(options, default_bitrate=192)
    job = job_services.job_create(owner=user_create(), upload=upload, options=parsed)
    assert job_convert(job_id=str(job.id)) == "done"
    assert isinstance(staged[0], staging.StreamedSource) is streamed
