"""core.media.ffmpeg against real ffmpeg builds: Debian's (with ffprobe) and imageio-ffmpeg's (without)."""

import os
import pickle
import shutil
import time
from pathlib import Path

import imageio_ffmpeg
import pytest

from core.media import ffmpeg
from core.media import probe as probing
from core.media.ffmpeg import DECODE_FAILED, FfmpegCancelled, MediaError, convert_to_mp3
from core.media.probe import media_duration, probe
from tests.support.media import (
    make_avi_with_embedded_playlist,
    make_concat_script,
    make_damaged_m4a,
    make_hls_playlist,
    make_media,
    make_random_bytes,
    make_truncated,
)

MOV = "mov,mp4,m4a,3gp,3g2,mj2"
MKV = "matroska,webm"

# kind -> (container, audio codecs, video codecs) for every kind that probes successfully.
EXPECTED = {
    "mp4_h264_aac_moov_end": (MOV, ["aac"], ["h264"]),
    "mp4_faststart": (MOV, ["aac"], ["h264"]),
    "mkv_vp9_opus": (MKV, ["opus"], ["vp9"]),
    "webm_vp8_vorbis": (MKV, ["vorbis"], ["vp8"]),
    "avi_mpeg4_mp3": ("avi", ["mp3"], ["mpeg4"]),
    "mov_h264_aac": (MOV, ["aac"], ["h264"]),
    "ts_h264_aac": ("mpegts", ["aac"], ["h264"]),
    "wav_pcm": ("wav", ["pcm_s16le"], []),
    "ogg_vorbis": ("ogg", ["vorbis"], []),
    "mp3_audio": ("mp3", ["mp3"], []),
    "m4a_aac": (MOV, ["aac"], []),
    "mp3_cover_art": ("mp3", ["mp3"], []),  # the cover picture is not video
    "mkv_default_audio_second": (MKV, ["vorbis", "vorbis"], []),
}
# Long enough that converting it takes over a second, so progress is reported before the end.
LONG_SECONDS = 300.0

_REAL_FFMPEG_PATH = ffmpeg.ffmpeg_path
_REAL_FFPROBE_PATH = ffmpeg.ffprobe_path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture
def fresh_binaries():
    """Forget which ffmpeg/ffprobe were found, before and after the test."""
    _REAL_FFMPEG_PATH.cache_clear()
    _REAL_FFPROBE_PATH.cache_clear()
    yield
    _REAL_FFMPEG_PATH.cache_clear()
    _REAL_FFPROBE_PATH.cache_clear()


@pytest.fixture
def bundled_ffmpeg(monkeypatch, fresh_binaries):
    """A host without ffmpeg on PATH: imageio-ffmpeg's build, which has no ffprobe."""
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)


@pytest.fixture(params=["ffprobe", "ffmpeg-only", "bundled"])
def backend(request, monkeypatch, fresh_binaries):
    """The three ways probe() can run."""
    if request.param == "ffprobe":
        if ffmpeg.ffprobe_path() is None:
            pytest.skip("no ffprobe on PATH")
    elif request.param == "ffmpeg-only":
        monkeypatch.setattr(probing, "ffprobe_path", lambda: None)
    else:
        request.getfixturevalue("bundled_ffmpeg")
    return request.param


def assert_no_file(path: Path) -> None:
    assert not path.exists(), f"{path.name} was left behind"


# ---------------------------------------------------------------------------
# Binaries


def test_system_ffmpeg_and_ffprobe_are_used_when_on_path(fresh_binaries):
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg on PATH")
    assert ffmpeg.ffmpeg_path() == shutil.which("ffmpeg")
    assert ffmpeg.ffprobe_path() == shutil.which("ffprobe")


def test_bundled_ffmpeg_is_used_without_one_on_path(bundled_ffmpeg, media_dir):
    source = make_media(media_dir, "mp4_faststart")
    assert ffmpeg.ffmpeg_path() == imageio_ffmpeg.get_ffmpeg_exe()
    assert ffmpeg.ffprobe_path() is None

    info = probe(source)
    assert (info.container, info.audio_codecs, info.video_codecs) == (MOV, ["aac"], ["h264"])

    destination = media_dir / "bundled.mp3"
    convert_to_mp3(source, destination, duration=info.duration)
    assert probe(destination).audio_codecs == ["mp3"]


def test_ffprobe_is_not_mixed_with_the_bundled_ffmpeg(monkeypatch, fresh_binaries):
    monkeypatch.setattr(
        shutil, "which", lambda name, *args, **kwargs: "/usr/bin/ffprobe" if name == "ffprobe" else None
    )
    assert ffmpeg.ffprobe_path() is None


# ---------------------------------------------------------------------------
# probe


@pytest.mark.parametrize("kind", EXPECTED)
def test_probe_describes_each_kind(backend, media_dir, kind):
    container, audio, video = EXPECTED[kind]
    info = probe(make_media(media_dir, kind))
    assert info.container == container
    assert info.audio_codecs == audio
    assert info.video_codecs == video
    assert info.has_audio
    assert info.duration == pytest.approx(3.0, abs=0.2)


def test_mp4_kinds_really_differ_in_index_position(media_dir):
    moov_end = make_media(media_dir, "mp4_h264_aac_moov_end").read_bytes()
    faststart = make_media(media_dir, "mp4_faststart").read_bytes()
    assert moov_end.index(b"moov") > moov_end.index(b"mdat")
    assert faststart.index(b"moov") < faststart.index(b"mdat")


def test_media_duration(media_dir):
    assert media_duration(make_media(media_dir, "ogg_vorbis", seconds=2.0)) == pytest.approx(2.0, abs=0.2)


NOT_MEDIA_CASES = {
    "random bytes named .bin": lambda d: make_random_bytes(d, 4000),  # ffmpeg guesses the "bin" demuxer
    "random bytes without a name": lambda d: make_random_bytes(d, 4000, suffix=""),
    "random bytes named .mp4": lambda d: make_random_bytes(d, 4000, suffix=".mp4"),
    # Raw FLAC / ADTS AAC are opened on the extension alone; the "audio" found in noise has no sample rate.
    "random bytes named .flac": lambda d: make_random_bytes(d, 65536, suffix=".flac"),
    "random bytes named .aac": lambda d: make_random_bytes(d, 65536, suffix=".aac"),
    "zero bytes": lambda d: _write(d / "empty.mp4", b""),
    "text": lambda d: _write(d / "notes.txt", b"Shopping list\n- milk\n- eggs\n" * 20),
    "upload cut off before the index": lambda d: make_truncated(d, "mp4_h264_aac_moov_end"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", NOT_MEDIA_CASES)
def test_probe_rejects_what_is_not_media(backend, media_dir, case):
    with pytest.raises(MediaError) as caught:
        probe(NOT_MEDIA_CASES[case](media_dir))
    assert caught.value.code == "not_media"
    assert str(caught.value) == probing.NOT_MEDIA


@pytest.mark.parametrize("make", [make_hls_playlist, make_concat_script], ids=["hls", "ffconcat"])
def test_probe_refuses_playlists(backend, media_dir, make):
    with pytest.raises(MediaError) as caught:
        probe(make(media_dir))
    assert caught.value.code == "container_not_allowed"
    assert str(caught.value) == probing.PLAYLIST_NOT_ALLOWED


@pytest.mark.parametrize("make", [make_hls_playlist, make_concat_script], ids=["hls", "ffconcat"])
def test_ffmpeg_itself_refuses_playlists_without_opening_what_they_name(backend, monkeypatch, tmp_path, make):
    """With our own first-bytes check out of the way, ffmpeg's format whitelist must stop the playlist.

    The file the playlist names is a FIFO with no writer: had ffmpeg tried to open it, it would hang
    until the probe timeout and the error would be a different one.
    """
    playlist = make(tmp_path)
    for named in tmp_path.glob("*-3s.*"):
        named.unlink()
        os.mkfifo(named)
    monkeypatch.setattr(probing, "_is_playlist_or_script", lambda head: False)
    monkeypatch.setattr(probing, "PROBE_TIMEOUT", 5.0)

    with pytest.raises(MediaError) as caught:
        probe(playlist)
    assert caught.value.code == "container_not_allowed"
    assert str(caught.value) == probing.PLAYLIST_NOT_ALLOWED


def test_probe_refuses_an_avi_carrying_an_embedded_playlist(backend, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER")
    with pytest.raises(MediaError) as caught:
        probe(make_avi_with_embedded_playlist(tmp_path, secret))
    assert caught.value.code == "container_not_allowed"
    assert str(caught.value) == probing.EMBEDDED_PLAYLIST


def test_ffmpeg_itself_never_opens_what_an_avi_embedded_playlist_names(monkeypatch, tmp_path):
    """With our scan out of the way, ffmpeg must still not follow the playlist inside the AVI.

    The named file is a FIFO with no writer: had ffmpeg opened it, probing and converting would hang
    until their time limits and fail; instead both finish and the MP3 holds only the AVI's own audio.
    """
    referred = tmp_path / "secret.ts"
    os.mkfifo(referred)
    avi = make_avi_with_embedded_playlist(tmp_path, referred, seconds=2)
    monkeypatch.setattr(probing, "_carries_playlist", lambda path: False)
    monkeypatch.setattr(probing, "PROBE_TIMEOUT", 10.0)

    info = probe(avi)
    assert (info.container, info.audio_codecs) == ("avi", ["pcm_s16le"])
    destination = tmp_path / "out.mp3"
    convert_to_mp3(avi, destination, duration=info.duration, limits=ffmpeg.ChildLimits(wall_seconds=20))
    assert media_duration(destination) == pytest.approx(2.0, abs=0.2)  # MP3 frames pad the end


def test_an_avi_without_playlists_is_not_refused_by_the_scan(backend, media_dir):
    assert probe(make_media(media_dir, "avi_mpeg4_mp3")).container == "avi"


def test_probe_refuses_images(backend, media_dir):
    with pytest.raises(MediaError) as caught:
        probe(make_media(media_dir, "png_image"))
    assert caught.value.code == "container_not_allowed"
    assert "(png)" in str(caught.value)


def test_probe_reports_video_without_audio(backend, media_dir):
    with pytest.raises(MediaError) as caught:
        probe(make_media(media_dir, "mp4_no_audio"))
    assert caught.value.code == "no_audio"
    assert str(caught.value) == "This video has no audio track, so there is nothing to convert to MP3."


def test_probe_of_a_missing_file_is_not_a_media_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nowhere.mp4")


def test_media_error_survives_pickling():
    error = pickle.loads(pickle.dumps(MediaError("no_audio", probing.NO_AUDIO)))  # noqa: S301 - our own data
    assert (error.code, str(error)) == ("no_audio", probing.NO_AUDIO)


# ---------------------------------------------------------------------------
# convert_to_mp3


@pytest.mark.parametrize("kind", [kind for kind in EXPECTED if kind != "mkv_default_audio_second"])
def test_convert_each_kind(media_dir, tmp_path, kind):
    source = make_media(media_dir, kind)
    source_duration = probe(source).duration
    destination = tmp_path / "out.mp3"
    progress: list[int] = []

    convert_to_mp3(source, destination, duration=source_duration, on_progress=progress.append)

    info = probe(destination)
    assert (info.container, info.audio_codecs, info.video_codecs) == ("mp3", ["mp3"], [])
    assert info.duration == pytest.approx(source_duration, abs=0.2)
    assert progress[-1] == 100


def test_convert_takes_the_default_audio_track(media_dir, tmp_path):
    # Track 1 lasts 3 s, track 2 (flagged default) 1.5 s: the MP3's length tells which one was used.
    destination = tmp_path / "out.mp3"
    convert_to_mp3(make_media(media_dir, "mkv_default_audio_second"), destination, duration=3.0)
    assert probe(destination).duration == pytest.approx(1.5, abs=0.2)


def test_convert_uses_the_requested_bitrate(media_dir, tmp_path):
    source = make_media(media_dir, "wav_pcm")
    sizes = {}
    for kbps in (64, 192):
        convert_to_mp3(source, tmp_path / f"{kbps}.mp3", duration=3.0, bitrate_kbps=kbps)
        sizes[kbps] = (tmp_path / f"{kbps}.mp3").stat().st_size
    # 3 s at 64 kbps is 24 kB of audio, at 192 kbps 72 kB (plus a small header).
    assert sizes[64] == pytest.approx(24_000, rel=0.2)
    assert sizes[192] == pytest.approx(72_000, rel=0.2)


def test_convert_rejects_an_impossible_bitrate(media_dir, tmp_path):
    with pytest.raises(ValueError):
        convert_to_mp3(make_media(media_dir, "wav_pcm"), tmp_path / "out.mp3", duration=3.0, bitrate_kbps=1000)


def test_progress_rises_to_100(media_dir, tmp_path):
    source = make_media(media_dir, "wav_pcm", seconds=LONG_SECONDS)
    progress: list[int] = []

    convert_to_mp3(source, tmp_path / "out.mp3", duration=LONG_SECONDS, on_progress=progress.append)

    assert progress[-1] == 100
    assert progress == sorted(set(progress)), "progress must only increase"
    assert all(isinstance(p, int) and 0 < p <= 100 for p in progress)
    assert len(progress) >= 2, "expected progress before the end"


def test_without_a_duration_only_completion_is_reported(media_dir, tmp_path):
    progress: list[int] = []
    convert_to_mp3(make_media(media_dir, "wav_pcm"), tmp_path / "out.mp3", duration=None, on_progress=progress.append)
    assert progress == [100]


def test_cancel_after_first_progress(media_dir, tmp_path):
    source = make_media(media_dir, "wav_pcm", seconds=LONG_SECONDS)
    destination = tmp_path / "out.mp3"
    progress: list[int] = []

    with pytest.raises(FfmpegCancelled):
        convert_to_mp3(
            source,
            destination,
            duration=LONG_SECONDS,
            on_progress=progress.append,
            should_cancel=lambda: bool(progress),
        )

    assert progress and progress[-1] < 100
    assert_no_file(destination)


def test_cancel_before_anything_happened(media_dir, tmp_path):
    destination = tmp_path / "out.mp3"
    with pytest.raises(FfmpegCancelled):
        convert_to_mp3(make_media(media_dir, "wav_pcm"), destination, duration=3.0, should_cancel=lambda: True)
    assert_no_file(destination)


def test_cancel_reaches_a_stalled_ffmpeg(monkeypatch, tmp_path):
    """ffmpeg blocked opening a FIFO nobody writes to: silent, and deaf to SIGTERM until killed."""
    source = tmp_path / "stalled.wav"
    os.mkfifo(source)
    destination = tmp_path / "out.mp3"
    monkeypatch.setattr(ffmpeg, "TERMINATE_GRACE", 1.0)
    polls: list[float] = []

    def should_cancel() -> bool:
        polls.append(time.monotonic())
        return len(polls) >= 3

    started = time.monotonic()
    with pytest.raises(FfmpegCancelled):
        convert_to_mp3(source, destination, duration=3.0, should_cancel=should_cancel)

    assert len(polls) == 3
    assert polls[2] - polls[0] == pytest.approx(2 * ffmpeg.CANCEL_CHECK_INTERVAL, abs=0.3)
    assert time.monotonic() - started < 10
    assert_no_file(destination)


def test_failing_callback_stops_ffmpeg_and_cleans_up(media_dir, tmp_path):
    destination = tmp_path / "out.mp3"

    def should_cancel() -> bool:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        convert_to_mp3(make_media(media_dir, "wav_pcm"), destination, duration=3.0, should_cancel=should_cancel)
    assert_no_file(destination)


@pytest.mark.parametrize("build", ["system", "bundled"])
def test_undecodable_audio_is_a_decode_failure(request, media_dir, tmp_path, build):
    if build == "bundled":
        request.getfixturevalue("bundled_ffmpeg")
    source = make_damaged_m4a(media_dir, damage="all")
    info = probe(source)  # the index is intact, so the file probes as ordinary AAC
    assert info.audio_codecs == ["aac"]
    destination = tmp_path / "out.mp3"

    with pytest.raises(MediaError) as caught:
        convert_to_mp3(source, destination, duration=info.duration)

    message = str(caught.value)
    assert caught.value.code == "decode_failed"
    assert message == DECODE_FAILED  # ffmpeg's own words stay with the error, for the logs
    assert caught.value.ffmpeg_lines  # each build words it its own way
    assert_no_file(destination)


@pytest.mark.parametrize("build", ["system", "bundled"])
def test_damage_in_the_middle_is_skipped_not_fatal(request, media_dir, tmp_path, build):
    # What ffmpeg actually does: it drops the packets it cannot decode and carries on, so the MP3
    # is made, without the damaged middle third of the 3 s source.
    if build == "bundled":
        request.getfixturevalue("bundled_ffmpeg")
    destination = tmp_path / "out.mp3"
    convert_to_mp3(make_damaged_m4a(media_dir, damage="middle"), destination, duration=3.0)
    assert probe(destination).duration == pytest.approx(2.0, abs=0.2)


def test_converting_a_file_without_audio_fails_cleanly(media_dir, tmp_path):
    destination = tmp_path / "out.mp3"
    with pytest.raises(MediaError) as caught:
        convert_to_mp3(make_media(media_dir, "mp4_no_audio"), destination, duration=3.0)
    assert caught.value.code == "decode_failed"
    assert any("does not contain any stream" in line for line in caught.value.ffmpeg_lines)
    assert_no_file(destination)
