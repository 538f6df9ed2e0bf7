import io

import pymongo
import pytest
from bson import ObjectId
from django.conf import settings
from django.core.management import call_command

from core import storage
from tests.factories import job_create, user_create
from tests.support.pipeline import stored_files_and_orphan_chunks
from uploads.models import Job
from uploads.services import housekeeping

pytestmark = pytest.mark.django_db


def save(bucket, **kwargs):
    return storage.save_stream(
        bucket, io.BytesIO(b"x" * 300_000), filename="f", content_type="application/octet-stream", **kwargs
    )


def test_cleanup_removes_what_no_job_needs_and_keeps_the_rest(mongodb, capsys):
    owner = user_create()
    kept_video = save(storage.VIDEOS)
    job_create(owner=owner, original_filename="a.mp4", size=1, video_file_id=kept_video.file_id)
    done = job_create(owner=owner, original_filename="b.mp4", size=1, status="done", mp3_file_id="mp3-placeholder")
    kept_mp3 = save(storage.MP3S, file_id=f"mp3-{done.id}")
    Job.objects.filter(id=done.id).update(mp3_file_id=kept_mp3.file_id)
    converting = job_create(owner=owner, original_filename="c.mp4", size=1, status="converting")
    in_progress_mp3 = save(storage.MP3S, file_id=f"mp3-{converting.id}")

    orphan_video = save(storage.VIDEOS)  # its upload died before the job row was written
    save(storage.MP3S, file_id="mp3-00000000-0000-0000-0000-000000000000")  # its job was deleted
    with pymongo.MongoClient(settings.MONGODB_URI) as client:  # chunks of an interrupted write
        client[settings.MONGODB_DB]["videos.chunks"].insert_one({"files_id": ObjectId(), "n": 0, "data": b"partial"})

    call_command("cleanup_storage", "--older-than", "0")
    assert (
        "removed 1 video(s), 0 audio source(s) or cover(s), 1 MP3(s), 0 expired resumable upload(s) and the "
        "chunks of 1 interrupted write(s)." in capsys.readouterr().out
    )
    assert storage.file_exists(storage.VIDEOS, kept_video.file_id)
    assert not storage.file_exists(storage.VIDEOS, orphan_video.file_id)
    assert storage.file_exists(storage.MP3S, kept_mp3.file_id) and storage.file_exists(
        storage.MP3S, in_progress_mp3.file_id
    )
    assert stored_files_and_orphan_chunks(storage.VIDEOS) == (1, 0)
    assert stored_files_and_orphan_chunks(storage.MP3S) == (2, 0)


def test_recent_files_are_left_alone(mongodb):
    save(storage.VIDEOS)
    call_command("cleanup_storage")
    assert stored_files_and_orphan_chunks(storage.VIDEOS)[0] == 1


def test_cleanup_keeps_sources_and_covers_jobs_name_and_a_running_attempts_mp3(mongodb):
    source, cover, orphan_source = save(storage.SOURCES), save(storage.SOURCES), save(storage.SOURCES)
    job_create(source_file_id=source.file_id, cover_file_id=cover.file_id)
    converting = job_create(status="converting", lease_owner="a" * 32)
    running = save(
        storage.MP3S,
        file_id=f"mp3-{converting.id}-{'a' * 12}",
        metadata={"job_id": str(converting.id), "attempt": "a" * 32},
    )
    # An attempt that lost the job (paused, then recovered by the sweeper): nothing needs its MP3.
    overtaken = save(
        storage.MP3S,
        file_id=f"mp3-{converting.id}-{'b' * 12}",
        metadata={"job_id": str(converting.id), "attempt": "b" * 32},
    )
    counts = housekeeping.storage_cleanup(older_than_seconds=0)
    assert counts["sources"] == 1 and counts["mp3s"] == 1
    assert storage.file_exists(storage.SOURCES, source.file_id) and storage.file_exists(storage.SOURCES, cover.file_id)
    assert not storage.file_exists(storage.SOURCES, orphan_source.file_id)
    assert storage.file_exists(storage.MP3S, running.file_id)
    assert not storage.file_exists(storage.MP3S, overtaken.file_id)


def test_the_converters_housekeeping_runs_the_cleanup_sparing_young_files(mongodb, rabbitmq, settings):
    from conversion.management.commands.run_converter import Command as ConverterCommand

    orphan = save(storage.SOURCES)  # an upload that died after storing its audio
    ConverterCommand().housekeeping()  # STORAGE_CLEANUP_MIN_AGE_SECONDS (an hour): too young to go
    assert storage.file_exists(storage.SOURCES, orphan.file_id)
    settings.STORAGE_CLEANUP_MIN_AGE_SECONDS = 0
    ConverterCommand().housekeeping()
    assert not storage.file_exists(storage.SOURCES, orphan.file_id)
