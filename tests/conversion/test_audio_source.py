"""Audio first: what job_create stores at upload (the audio tracks stream-copied into one small file, and the
cover frame) carries everything a conversion needs. Every test goes the real way: job_create on a real
upload (real probe and extraction, SecantusDB), job_convert (real ffmpeg), and the MP3 read back from
GridFS with ffmpeg, ffprobe and mutagen."""

import math
import subprocess
import sys
from array import array
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile

from conversion.services import job_convert
from core import storage
from tests.factories import uploaded_job, user_create
from tests.support import audio_checks, media
from tests.support.pipeline import stored_files_and_orphan_chunks
from uploads import options as job_options
from uploads.models import Job
from uploads.services import intake

pytestmark = pytest.mark.django_db(transaction=True)

VIDEO_KINDS = tuple(kind for kind in media.STEPPED_TONE_KINDS if kind != "wav_pcm")


@pytest.fixture
def services(mongodb, rabbitmq):
    """SecantusDB and RabbitMQ, both needed by job_create (GridFS, the queue) and job_convert."""


def converted(job: Job, directory: Path) -> Path:
    """Convert the job as the worker does; the MP3 as stored in GridFS, copied to a local file."""
    assert job_convert(job_id=str(job.id)) == "done", Job.objects.get(id=job.id).error
    job.refresh_from_db()
    mp3 = directory / f"{job.id}.mp3"
    storage.copy_to_path(storage.MP3S, job.mp3_file_id, mp3)
    return mp3


def stored_source(job: Job, directory: Path) -> Path:
    path = directory / f"{job.id}-source"
    storage.copy_to_path(storage.SOURCES, job.source_file_id, path)
    return path


def decoded_samples(path: Path) -> tuple[array, int]:
    """The first audio track decoded as ffmpeg decodes it (the MP3 decoder drops LAME's delay and padding),
    as mono 16-bit samples, with its sample rate."""
    rate = int(audio_checks.audio_stream(path)["sample_rate"])
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1"]
        + ["-c:a", "pcm_s16le", "-f", "s16le", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    samples = array("h", result.stdout)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples, rate


def zero_crossing_hz(samples: array) -> float:
    """A tone's frequency in cycles per sample (two zero crossings per cycle); multiply by the rate."""
    crossings = sum(1 for a, b in zip(samples, samples[1:], strict=False) if (a < 0) != (b < 0))
    return crossings / 2 / len(samples)


def stepped_tone_mean_hz(start: float, end: float) -> float:
    """The stepped tone's frequency averaged over source seconds [start, end]: what zero crossings measure."""
    total = 0.0
    for second in range(math.floor(start), math.ceil(end)):
        total += (min(end, second + 1) - max(start, second)) * media.stepped_tone_hz(second)
    return total / (end - start)


def steady_tone_hz(path: Path) -> float:
    """A steady tone's frequency from the zero crossings of its middle: the first and last quarter second
    are left out, where an encoder's padding decodes as near-silent noise full of crossings."""
    samples, rate = decoded_samples(path)
    quarter = rate // 4
    return zero_crossing_hz(samples[quarter:-quarter]) * rate


def rgb_of(jpeg: bytes, directory: Path) -> tuple[int, int, int]:
    """The mean colour of a JPEG, decoded by ffmpeg and scaled down to one pixel."""
    picture = directory / "picture.jpg"
    picture.write_bytes(jpeg)
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(picture), "-vf", "scale=1:1:flags=area"]
        + ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert len(result.stdout) == 3
    return tuple(result.stdout)


# ---------------------------------------------------------------------------
# 1. Trim: the right length, cut at the right place, in every container

# The source's second n is a steady tone of stepped_tone_hz(n) (300, 500, 700, ... Hz). The cut points sit
# a quarter second before a step, so the MP3's first and last half second each straddle a step, a quarter
# second on either side: their zero-crossing frequency is the mean of the two tones (400 and 1000 Hz), and
# it moves 100 Hz for every quarter second the cut is off, either way. A cut on a step or mid-second would
# not see a quarter second's error in a half-second window.
TRIM_START, TRIM_END = 0.75, 4.25
WINDOW = 0.5  # seconds
# A cut 0.075 s off moves the mean by 30 Hz. Exact cuts measure within 1-10 Hz: FLV and MPEG-TS (AAC) and
# AVI (MP3) do not record the encoder's delay, so their decoded audio, upload and MP3 alike, starts ~0.025 s late.
HZ_TOLERANCE = 30


@pytest.mark.parametrize("kind", media.STEPPED_TONE_KINDS)
def test_trim_cuts_the_asked_span_at_the_right_place(services, media_files, tmp_path, kind):
    job = uploaded_job(media.make_stepped_tone(media_files, kind), start=str(TRIM_START), end=str(TRIM_END))
    mp3 = converted(job, tmp_path)

    samples, rate = decoded_samples(mp3)
    asked = TRIM_END - TRIM_START
    assert abs(len(samples) / rate - asked) <= 0.1, f"{len(samples) / rate:.3f} s of audio, asked for {asked} s"
    assert abs(audio_checks.duration(mp3) - asked) <= 0.1 and abs(job.mp3_duration - asked) <= 0.1

    window = round(WINDOW * rate)
    first = zero_crossing_hz(samples[:window]) * rate
    last = zero_crossing_hz(samples[-window:]) * rate
    expected_first = stepped_tone_mean_hz(TRIM_START, TRIM_START + WINDOW)  # 400 Hz
    expected_last = stepped_tone_mean_hz(TRIM_END - WINDOW, TRIM_END)  # 1000 Hz
    assert abs(first - expected_first) <= HZ_TOLERANCE, f"starts at {first:.0f} Hz, not {expected_first:.0f} Hz"
    assert abs(last - expected_last) <= HZ_TOLERANCE, f"ends at {last:.0f} Hz, not {expected_last:.0f} Hz"


def test_the_stepped_tone_and_the_window_check_see_a_misplaced_cut(media_files):
    """The check above on the source itself: right at the cut points, 100 Hz off a quarter second away."""
    samples, rate = decoded_samples(media.make_stepped_tone(media_files, "wav_pcm"))
    for second in range(6):  # steady, distinct tones, as media.stepped_tone_hz says
        middle = samples[round((second + 0.1) * rate) : round((second + 0.9) * rate)]
        assert abs(zero_crossing_hz(middle) * rate - media.stepped_tone_hz(second)) <= 2

    def window_hz(start: float) -> float:
        return zero_crossing_hz(samples[round(start * rate) : round((start + WINDOW) * rate)]) * rate

    for at in (TRIM_START, TRIM_END - WINDOW):
        assert abs(window_hz(at) - stepped_tone_mean_hz(at, at + WINDOW)) <= 2
        for off_by in (-0.25, 0.25):
            assert abs(window_hz(at + off_by) - stepped_tone_mean_hz(at, at + WINDOW)) >= 95


# ---------------------------------------------------------------------------
# 2. Loudness normalization of a 96 kHz source


@pytest.mark.parametrize("kind", ["wav", "flac"])
def test_a_96_khz_source_normalizes_to_a_sample_rate_lame_takes(services, media_files, tmp_path, kind):
    source = media.make_high_rate_audio(media_files, kind, rate=96000)
    assert audio_checks.audio_stream(source)["sample_rate"] == "96000"
    job = uploaded_job(source, normalize="true")
    mp3 = converted(job, tmp_path)  # -ar 96000 made libmp3lame refuse to open, failing the job
    assert job.status == "done"
    assert audio_checks.audio_stream(mp3)["sample_rate"] == "48000"  # 96000 / 2: the highest LAME rate dividing it
    assert abs(audio_checks.duration(mp3) - 3.0) <= 0.1
    assert abs(steady_tone_hz(mp3) - 440) < 10
    assert abs(audio_checks.integrated_loudness(mp3) - job.options["loudness_target"]) <= 1.0


# ---------------------------------------------------------------------------
# 3. The cover frame

# One second of each: the frame at t seconds is all COLOURS[int(t)].
COLOURS = ("red", "lime", "blue", "yellow")
RGB = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0)}


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest of RGB, and only if it is near (H.264 and JPEG shift a flat colour by a few steps)."""
    name = min(RGB, key=lambda candidate: sum((a - b) ** 2 for a, b in zip(rgb, RGB[candidate], strict=True)))
    assert all(abs(a - b) <= 40 for a, b in zip(rgb, RGB[name], strict=True)), f"{rgb} is no colour of {COLOURS}"
    return name


@pytest.mark.parametrize(
    ("options", "colour"),
    [
        ({"cover_time": "2.5"}, "blue"),
        ({"cover_time": "00:00:01.500"}, "lime"),
        # None chosen: the first key frame from 10 % in (0.4 s of 4 s; key frames each second), so
        # the default cover decodes one frame, not every frame since the key frame before 0.4 s.
        ({}, "lime"),
    ],
    ids=["2.5s", "1.5s", "default"],
)
def test_cover_time_picks_the_frame_at_that_time(services, media_files, tmp_path, options, colour):
    job = uploaded_job(media.make_colour_segments(media_files, COLOURS), **options)
    mp3 = converted(job, tmp_path)
    pictures = audio_checks.id3(mp3).getall("APIC")
    assert len(pictures) == 1 and pictures[0].mime == "image/jpeg"
    assert colour_name(rgb_of(pictures[0].data, tmp_path)) == colour


@pytest.mark.parametrize(
    ("container", "keyframe_every"),
    [*((container, 10) for container in media.COLOUR_CONTAINERS), ("ts", 1000)],
    ids=[*media.COLOUR_CONTAINERS, "ts-one-keyframe"],
)
def test_the_cover_frame_is_grabbed_at_cover_time_in_every_container(
    services, media_files, tmp_path, container, keyframe_every
):
    """The frame job_create stores for the cover, from each container: 2.5 s is mid-way between keyframes
    (one a second, or only the first), so a grab that lands on a keyframe instead shows lime or yellow."""
    upload = media.make_colour_segments(media_files, COLOURS, container=container, keyframe_every=keyframe_every)
    job = uploaded_job(upload, cover_time="2.5")
    assert job.cover_file_id, "no cover frame was stored for this video"
    cover = tmp_path / "stored-cover.jpg"
    storage.copy_to_path(storage.SOURCES, job.cover_file_id, cover)
    assert colour_name(rgb_of(cover.read_bytes(), tmp_path)) == "blue"


@pytest.mark.parametrize("container", ["mp4", "ts"])
def test_a_default_cover_with_no_key_frame_after_10_percent_is_the_frame_at_10_percent(
    services, media_files, tmp_path, container
):
    upload = media.make_colour_segments(media_files, COLOURS, container=container, keyframe_every=1000)
    job = uploaded_job(upload)
    cover = tmp_path / "stored-cover.jpg"
    storage.copy_to_path(storage.SOURCES, job.cover_file_id, cover)
    assert colour_name(rgb_of(cover.read_bytes(), tmp_path)) == "red"  # 0.4 s, decoded from the only key frame


def test_without_a_cover_the_mp3_has_no_picture_but_the_frame_is_kept_for_a_later_conversion(
    services, media_files, tmp_path
):
    job = uploaded_job(media.make_colour_segments(media_files, COLOURS), cover="false")
    mp3 = converted(job, tmp_path)
    assert audio_checks.id3(mp3).getall("APIC") == []
    # Grabbed anyway, at the default time, so converting again with the cover on needs no video.
    assert job.cover_file_id and job.cover_size > 0
    cover = tmp_path / "stored-cover.jpg"
    storage.copy_to_path(storage.SOURCES, job.cover_file_id, cover)
    assert colour_name(rgb_of(cover.read_bytes(), tmp_path)) == "lime"


# ---------------------------------------------------------------------------
# 4. The audio track chosen by language, from a Matroska and from a QuickTime source


def two_language_upload(media_files: Path, container: str) -> Path:
    if container == "mkv":
        return media.make_media(media_files, "mkv_two_languages")
    return media.make_mp4_two_languages(media_files)


@pytest.mark.parametrize("container", ["mkv", "mp4"])
@pytest.mark.parametrize(("language", "frequency"), [("eng", 440), ("deu", 1000)])
def test_audio_language_picks_that_track(services, media_files, tmp_path, container, language, frequency):
    job = uploaded_job(two_language_upload(media_files, container), audio_language=language)
    mp3 = converted(job, tmp_path)
    assert abs(steady_tone_hz(mp3) - frequency) < 10
    assert abs(audio_checks.duration(mp3) - 3.0) <= 0.1


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_the_audio_source_keeps_every_track_in_order(services, media_files, tmp_path, container):
    """The conversion maps 0:a:N as the upload was probed, so the source must hold the same tracks in order."""
    upload = two_language_upload(media_files, container)
    source = stored_source(uploaded_job(upload), tmp_path)
    for track in ("0:a:0", "0:a:1"):
        assert audio_checks.decoded_audio_md5(source, stream=track) == audio_checks.decoded_audio_md5(
            upload, stream=track
        ), track


# ---------------------------------------------------------------------------
# 5. Chapters and the source's tags


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_chapters_and_source_tags_reach_the_mp3(services, media_files, tmp_path, container):
    make = media.make_media_with_chapters if container == "mp4" else media.make_mkv_with_chapters
    upload = make(media_files, chapters=3, seconds_each=2.0)
    source_chapters = audio_checks.ffprobe_json(upload)["chapters"]
    assert len(source_chapters) == 3
    mp3 = converted(uploaded_job(upload), tmp_path)
    tags = audio_checks.id3(mp3)
    chaps = sorted(tags.getall("CHAP"), key=lambda frame: frame.start_time)
    assert [str(chap.sub_frames["TIT2"]) for chap in chaps] == ["Part 1", "Part 2", "Part 3"]
    assert [(chap.start_time, chap.end_time) for chap in chaps] == [
        (round(float(c["start_time"]) * 1000), round(float(c["end_time"]) * 1000)) for c in source_chapters
    ]
    assert str(tags["TIT2"]) == "Chaptered" and str(tags["TPE1"]) == "Chapter Artist"


def test_tags_of_an_mkv_reach_the_mp3(services, media_files, tmp_path):
    mp3 = converted(uploaded_job(media.make_media(media_files, "mkv_mp3_tagged")), tmp_path)
    tags = audio_checks.id3(mp3)
    assert str(tags["TIT2"]) == "Source Title" and str(tags["TPE1"]) == "Source Artist"
    assert str(tags["TALB"]) == "Source Album" and str(tags["TDRC"]) == "2021"


# ---------------------------------------------------------------------------
# 6. The stored source is the upload's audio, sample for sample, and smaller


@pytest.mark.parametrize("kind", media.STEPPED_TONE_KINDS)
def test_the_audio_source_decodes_to_exactly_the_uploads_samples(services, media_files, tmp_path, kind):
    upload = media.make_stepped_tone(media_files, kind)
    job = uploaded_job(upload)
    source = stored_source(job, tmp_path)
    assert source.stat().st_size == job.source_size
    assert audio_checks.decoded_audio_md5(source) == audio_checks.decoded_audio_md5(upload)
    probed = audio_checks.ffprobe_json(source)
    if kind in VIDEO_KINDS:
        assert job.source_size < job.size, f"source {job.source_size} bytes, upload {job.size} bytes"
        assert [stream["codec_type"] for stream in probed["streams"]] == ["audio"]
        # QuickTime for ISO-BMFF uploads (it keeps the edit list that trims AAC's priming), Matroska otherwise.
        expected = "mov" if kind in ("mp4_aac_moov_end", "mov_aac") else "matroska"
        assert expected in probed["format"]["format_name"].split(",")
        assert job.video_file_id == ""
    else:  # an audio upload is its own source
        assert source.read_bytes() == upload.read_bytes() and job.source_size == job.size
        assert job.cover_file_id == ""
    assert stored_files_and_orphan_chunks(storage.VIDEOS) == (0, 0)


# ---------------------------------------------------------------------------
# 7. The default job encodes as plain ffmpeg would


def test_the_default_job_encodes_exactly_as_plain_ffmpeg(services, media_files, tmp_path, settings):
    settings.MP3_BITRATE_KBPS = 192
    upload = media.make_media(media_files, "mp4_h264_aac_moov_end")
    job = intake.job_create(
        owner=user_create(), upload=SimpleUploadedFile(upload.name, upload.read_bytes()), options=None
    )
    mp3 = converted(job, tmp_path)
    plain = tmp_path / "plain.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(upload), "-vn", "-c:a", "libmp3lame", "-b:a", "192k"]
        + [str(plain)],
        check=True,
        timeout=60,
    )
    # The same samples through the same encoder: the extraction added, dropped or shifted nothing.
    assert audio_checks.decoded_audio_md5(mp3) == audio_checks.decoded_audio_md5(plain)


# ---------------------------------------------------------------------------
# 8. A codec no container we write carries: the upload is its own source


def test_nellymoser_flv_is_stored_as_it_is_and_converts(services, media_files, tmp_path):
    upload = media.make_flv_nellymoser(media_files)
    assert audio_checks.audio_stream(upload)["codec_name"] == "nellymoser"
    job = uploaded_job(upload)
    # Matroska refuses Nellymoser ("No wav codec tag found"), so the whole upload is the source.
    assert job.source_size == job.size
    assert stored_source(job, tmp_path).read_bytes() == upload.read_bytes()
    assert job.cover_file_id  # still a video: its frame is grabbed as for any other
    mp3 = converted(job, tmp_path)
    assert job.status == "done"
    assert abs(audio_checks.duration(mp3) - 3.0) <= 0.1 and abs(job.mp3_duration - 3.0) <= 0.1
    assert abs(steady_tone_hz(mp3) - 440) < 10


# ---------------------------------------------------------------------------
# 9. An extraction that cannot run within its limits refuses the upload and leaves nothing behind


@pytest.mark.parametrize("held", ["in-memory", "spooled"])
def test_an_extraction_over_its_memory_limit_refuses_the_upload_and_leaves_nothing(
    services, media_files, tmp_path, tmp_path_factory, settings, held
):
    upload_path = media.make_stepped_tone(media_files, "mp4_aac_moov_end")
    if held == "in-memory":  # job_create copies it into FILE_UPLOAD_TEMP_DIR for ffmpeg
        upload = SimpleUploadedFile(upload_path.name, upload_path.read_bytes())
    else:  # Django spooled it elsewhere; job_create only makes its extraction directory in FILE_UPLOAD_TEMP_DIR
        settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path_factory.mktemp("spool"))
        upload = TemporaryUploadedFile(upload_path.name, "application/octet-stream", upload_path.stat().st_size, None)
        upload.write(upload_path.read_bytes())
        upload.seek(0)
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    # Probing has its own fixed limit, so the file is still probed and found fine; extraction is what fails:
    # 8 MB of address space is not enough for ffmpeg to even map its shared libraries.
    settings.FFMPEG_MEMORY_LIMIT_MB = 8
    options = job_options.parse_options({}, default_bitrate=192)
    try:
        with pytest.raises(intake.UploadRejected) as refused:
            intake.job_create(owner=user_create(), upload=upload, options=options)
    finally:
        upload.close()
    assert refused.value.status == 422 and refused.value.code == "extract_failed"
    sentence = str(refused.value)
    assert sentence.endswith(".") and "Traceback" not in sentence and str(tmp_path) not in sentence
    assert Job.objects.count() == 0
    for bucket in (storage.VIDEOS, storage.SOURCES, storage.MP3S):
        assert stored_files_and_orphan_chunks(bucket) == (0, 0), bucket
    assert list(tmp_path.iterdir()) == []
