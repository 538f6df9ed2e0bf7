"""The chapters a converted MP3 carries are recorded on its job (for the podcast feed's podcast:chapters),
read back from the file with ffmpeg alone; a job that asks for no chapters records none, and dedup
copies them to the job that shares the MP3."""

import subprocess

import pytest

from conversion.services import job_convert
from core.media import probe
from core.media.ffmpeg import ffmpeg_path
from tests.factories import uploaded_job
from tests.support import media
from uploads.models import Job

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_chapter_titles_with_the_metadata_syntax_come_back_as_written(tmp_path):
    metadata = tmp_path / "chapters.ffmetadata"
    metadata.write_text(
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=Intro \\= hello\\; \\#1\n"
        "[CHAPTER]\nTIMEBASE=1/90000\nSTART=135000\nEND=270000\ntitle=Two\\\nlines\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=3000\nEND=3000\n"
    )
    target = tmp_path / "chapters.mp3"
    subprocess.run(
        [ffmpeg_path(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=duration=4", "-i", str(metadata)]
        + ["-map", "0:a", "-map_chapters", "1", "-c:a", "libmp3lame", "-id3v2_version", "4", str(target)],
        check=True,
    )
    found = probe.chapters(target)
    # (The MP3 muxer moves the times by the encoder's delay, 25 ms, and names an untitled chapter itself.)
    assert [chapter["title"] for chapter in found[:2]] == ["Intro = hello; #1", "Two lines"]
    assert [chapter["start"] for chapter in found] == pytest.approx([0.0, 1.5, 3.0], abs=0.05)
    assert [chapter["end"] for chapter in found[:2]] == pytest.approx([1.5, 3.0], abs=0.05)
    assert found[2]["end"] is None  # an empty chapter: no end
    assert probe.chapters(media.make_media(tmp_path, "wav_pcm")) == []


def test_the_converter_records_the_mp3s_chapters_or_none_when_the_job_drops_them(mongodb, rabbitmq, media_files):
    source = media.make_media_with_chapters(media_files)
    kept = uploaded_job(source)
    dropped = uploaded_job(source, chapters="false")
    for job in (kept, dropped):
        assert job_convert(job_id=str(job.id)) == "done"
    kept, dropped = Job.objects.get(id=kept.id), Job.objects.get(id=dropped.id)
    assert [(c["title"], c["start"]) for c in kept.mp3_chapters] == [
        ("Part 1", 0.0),
        ("Part 2", pytest.approx(2.0, abs=0.1)),
        ("Part 3", pytest.approx(4.0, abs=0.1)),
    ]
    assert dropped.mp3_chapters == []
    again = uploaded_job(source, owner=kept.owner)  # the same file and options: dedup shares the MP3
    assert again.reused_from == kept.id and again.mp3_chapters == kept.mp3_chapters
