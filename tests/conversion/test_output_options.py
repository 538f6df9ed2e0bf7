"""Per-job output options (issue #9) on real conversions: the upload goes through job_create (real probe,
SecantusDB, RabbitMQ), the conversion through job_convert (real ffmpeg), and the MP3 is read back with
ffprobe, ffmpeg's analysis filters and mutagen."""

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from conversion.services import job_convert
from core import storage
from tests.factories import user_create
from tests.support import audio_checks, media
from uploads.options import parse_options
from uploads.services import intake

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def convert(mongodb, rabbitmq, tmp_path):
    """Upload a file with options, convert it, and return (job, path of the produced MP3)."""
    counter = iter(range(1000))

    def run(path, **raw_options):
        options = parse_options(raw_options, default_bitrate=settings.MP3_BITRATE_KBPS)
        upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/octet-stream")
        job = intake.job_create(owner=user_create(), upload=upload, options=options)
        assert job_convert(job_id=str(job.id)) == "done", job.error
        job.refresh_from_db()
        output = tmp_path / f"out-{next(counter)}.mp3"
        storage.copy_to_path(storage.MP3S, job.mp3_file_id, output)
        return job, output

    return run


# ---------------------------------------------------------------------------
# Quality, sample rate, channels


def test_default_options_encode_as_before_cbr_at_the_server_bitrate_keeping_rate_and_channels(convert, media_files):
    job, mp3 = convert(media.make_media(media_files, "wav_pcm"))
    stream = audio_checks.audio_stream(mp3)
    assert int(stream["bit_rate"]) == settings.MP3_BITRATE_KBPS * 1000
    assert stream["sample_rate"] == "44100" and stream["channels"] == 1
    assert job.options["bitrate"] == settings.MP3_BITRATE_KBPS and job.options["vbr_quality"] is None


def test_cbr_bitrate_sample_rate_and_mono(convert, media_files):
    _, mp3 = convert(media.make_media(media_files, "mkv_vp9_opus"), bitrate=64, sample_rate=22050, channels="mono")
    stream = audio_checks.audio_stream(mp3)
    assert int(stream["bit_rate"]) == 64000
    assert stream["sample_rate"] == "22050" and stream["channels"] == 1


def test_stereo_at_48_khz(convert, media_files):
    _, mp3 = convert(media.make_media(media_files, "wav_pcm"), sample_rate=48000, channels="stereo")
    stream = audio_checks.audio_stream(mp3)
    assert stream["sample_rate"] == "48000" and stream["channels"] == 2


def test_vbr_writes_a_xing_lame_header_so_the_duration_is_right(convert, media_files):
    from mutagen.mp3 import MP3, BitrateMode

    source = media.make_media(media_files, "wav_pcm", seconds=8.0)
    _, mp3 = convert(source, vbr_quality=2)
    info = MP3(str(mp3)).info
    assert b"Xing" in mp3.read_bytes()[:8192]  # "Info" would mean a CBR header
    assert info.bitrate_mode == BitrateMode.VBR  # mutagen reads the mode from the Xing/LAME header
    assert abs(info.length - 8.0) < 0.1  # from the header's frame count
    assert abs(audio_checks.duration(mp3) - 8.0) < 0.1


# ---------------------------------------------------------------------------
# Trim and audio track


def test_trim_start_and_end(convert, media_files):
    job, mp3 = convert(media.make_media(media_files, "mp4_faststart", seconds=6.0), start="00:00:01.500", end=4)
    assert job.options["start"] == 1.5 and job.options["end"] == 4.0
    assert abs(audio_checks.duration(mp3) - 2.5) <= 0.1
    assert abs(job.mp3_duration - 2.5) <= 0.1


def test_trim_start_only_keeps_the_rest(convert, media_files):
    _, mp3 = convert(media.make_media(media_files, "wav_pcm", seconds=6.0), start=2)
    assert abs(audio_checks.duration(mp3) - 4.0) <= 0.1


@pytest.mark.parametrize(
    ("choice", "frequency"),
    [
        ({}, 1000),  # the container's default track (the German one is flagged default)
        ({"audio_track": 0}, 440),
        ({"audio_track": 1}, 1000),
        ({"audio_language": "eng"}, 440),
        ({"audio_language": "deu"}, 1000),
    ],
)
def test_audio_track_by_index_or_language(convert, media_files, choice, frequency):
    _, mp3 = convert(media.make_media(media_files, "mkv_two_languages"), **choice)
    assert abs(audio_checks.dominant_frequency(mp3) - frequency) < 20


# ---------------------------------------------------------------------------
# Loudness


@pytest.mark.parametrize("target", [-16, -23])
def test_loudnorm_two_pass_reaches_the_target_and_records_the_input_loudness(convert, media_files, target):
    source = media.make_media(media_files, "mp4_faststart", seconds=8.0)
    source_loudness = audio_checks.integrated_loudness(source)
    job, mp3 = convert(source, normalize=True, loudness_target=target)
    assert abs(audio_checks.integrated_loudness(mp3) - target) <= 1.0
    assert abs(job.input_loudness["input_i"] - source_loudness) <= 1.0
    assert job.options["loudness_target"] == target and job.options["true_peak"] == -1.5


# ---------------------------------------------------------------------------
# Tags, cover, chapters


def test_tags_come_from_the_source_and_can_be_overridden(convert, media_files):
    source = media.make_media(media_files, "mkv_mp3_tagged")
    _, mp3 = convert(source)
    tags = audio_checks.id3(mp3)
    assert tags.version == (2, 4, 0)
    assert str(tags["TIT2"]) == "Source Title" and str(tags["TPE1"]) == "Source Artist"
    assert str(tags["TALB"]) == "Source Album" and str(tags["TDRC"]) == "2021"

    _, mp3 = convert(source, artist="Someone Else", date="1999-05-01", title="Mine")
    tags = audio_checks.id3(mp3)
    assert str(tags["TIT2"]) == "Mine" and str(tags["TPE1"]) == "Someone Else"
    assert str(tags["TALB"]) == "Source Album" and str(tags["TDRC"]) == "1999-05-01"


def test_the_title_falls_back_to_the_file_name(convert, media_files):
    _, mp3 = convert(media.make_media(media_files, "wav_pcm"))
    assert str(audio_checks.id3(mp3)["TIT2"]) == "wav_pcm-3s"


def test_cover_is_a_jpeg_frame_of_the_video_at_its_size(convert, media_files, tmp_path):
    _, mp3 = convert(media.make_media(media_files, "mp4_faststart"))
    pictures = audio_checks.id3(mp3).getall("APIC")
    assert len(pictures) == 1
    assert pictures[0].mime == "image/jpeg" and pictures[0].type == 3  # 3: front cover
    assert pictures[0].data[:3] == b"\xff\xd8\xff"
    assert audio_checks.image_size(pictures[0].data, tmp_path) == (160, 120)


def test_cover_at_a_chosen_time_differs_from_the_default_frame(convert, media_files):
    source = media.make_media(media_files, "mp4_faststart", seconds=6.0)
    _, default_cover = convert(source)
    _, late_cover = convert(source, cover_time=5)
    first = audio_checks.id3(default_cover).getall("APIC")[0].data
    second = audio_checks.id3(late_cover).getall("APIC")[0].data
    assert first != second  # testsrc2 moves every frame


def test_no_cover_when_turned_off_or_for_audio_only_input(convert, media_files):
    _, mp3 = convert(media.make_media(media_files, "mp4_faststart"), cover=False)
    assert audio_checks.id3(mp3).getall("APIC") == []
    _, mp3 = convert(media.make_media(media_files, "m4a_aac"))
    assert audio_checks.id3(mp3).getall("APIC") == []


def test_chapters_become_chap_and_ctoc_frames(convert, media_files):
    source = media.make_media_with_chapters(media_files, chapters=3, seconds_each=2.0)
    source_chapters = audio_checks.ffprobe_json(source)["chapters"]
    _, mp3 = convert(source)
    tags = audio_checks.id3(mp3)
    chaps = sorted(tags.getall("CHAP"), key=lambda frame: frame.start_time)
    assert [(c.start_time, c.end_time) for c in chaps] == [
        (round(float(c["start_time"]) * 1000), round(float(c["end_time"]) * 1000)) for c in source_chapters
    ]
    assert [str(c.sub_frames["TIT2"]) for c in chaps] == ["Part 1", "Part 2", "Part 3"]
    assert len(tags.getall("CTOC")) == 1
    assert str(tags["TPE1"]) == "Chapter Artist"


def test_chapters_can_be_left_out(convert, media_files):
    _, mp3 = convert(media.make_media_with_chapters(media_files), chapters=False)
    tags = audio_checks.id3(mp3)
    assert tags.getall("CHAP") == [] and tags.getall("CTOC") == []


# ---------------------------------------------------------------------------
# Stream copy


def test_stream_copy_keeps_the_mp3_audio_packets_and_still_tags_and_covers(convert, media_files):
    source = media.make_media(media_files, "mkv_mp3_tagged")
    _, copied = convert(source)  # the default: an MP3 track is copied when nothing asks to change it
    assert audio_checks.audio_packets_md5(copied) == audio_checks.audio_packets_md5(source)
    tags = audio_checks.id3(copied)
    assert str(tags["TIT2"]) == "Source Title" and len(tags.getall("APIC")) == 1

    for reencode in ({"stream_copy": False}, {"bitrate": 192}, {"vbr_quality": 4}):
        _, reencoded = convert(source, **reencode)
        assert audio_checks.audio_packets_md5(reencoded) != audio_checks.audio_packets_md5(source), reencode


def test_stream_copy_gives_way_when_an_option_changes_the_audio(convert, media_files):
    source = media.make_media(media_files, "avi_mpeg4_mp3")
    _, mp3 = convert(source, stream_copy=True, channels="stereo")
    assert audio_checks.audio_packets_md5(mp3) != audio_checks.audio_packets_md5(source)
    assert audio_checks.audio_stream(mp3)["channels"] == 2


def test_stream_copy_of_a_non_mp3_source_encodes(convert, media_files):
    _, mp3 = convert(media.make_media(media_files, "mp4_faststart"), stream_copy=True, bitrate=96)
    assert int(audio_checks.audio_stream(mp3)["bit_rate"]) == 96000
