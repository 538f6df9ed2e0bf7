"""conversion.staging: stored videos streamed into ffmpeg (MP4 index moved to the front), or downloaded first."""

import os
import signal
import struct
import uuid
from pathlib import Path

import pytest

from conversion import ffmpeg, staging
from tests.support.media import make_media, make_random_bytes
from tests.support.services import SecantusProcess
from uploads import storage

# Kinds ffmpeg reads front to back through the pipe (the MP4/MOV ones after the index is moved first).
STREAMED = [
    "mp4_h264_aac_moov_end",
    "mp4_faststart",
    "mov_h264_aac",
    "m4a_aac",
    "mkv_vp9_opus",
    "webm_vp8_vorbis",
    "avi_mpeg4_mp3",
    "ts_h264_aac",
    "wav_pcm",
    "ogg_vorbis",
]


def store(path: Path) -> str:
    return storage.save_path(storage.VIDEOS, path, filename=path.name, content_type="application/octet-stream").file_id


def staged_bytes(source: staging.StreamedSource) -> bytes:
    """What the writer sends down the pipe, read from the pipe's other end."""
    read_end, write_end = os.pipe()
    source.start(write_end)
    data = bytearray()
    with os.fdopen(read_end, "rb") as reader:
        while chunk := reader.read(1 << 20):
            data += chunk
    source.stop()
    assert source.failure() is None
    return bytes(data)


def box_order(data: bytes) -> list[bytes]:
    kinds, position = [], 0
    while position < len(data):
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[position + 8 : position + 16])
        kinds.append(kind)
        position += size or len(data) - position
    return kinds


@pytest.mark.parametrize("kind", STREAMED)
def test_streamed_kinds_convert_to_the_same_mp3_as_from_a_file(mongodb, media_dir, tmp_path, kind):
    path = make_media(media_dir, kind)
    source = staging.stage_source(storage.VIDEOS, store(path), workdir=tmp_path)
    assert isinstance(source, staging.StreamedSource)
    streamed_mp3, file_mp3 = tmp_path / "streamed.mp3", tmp_path / "file.mp3"
    ffmpeg.convert_to_mp3(source, streamed_mp3, duration=3.0)
    ffmpeg.convert_to_mp3(path, file_mp3, duration=3.0)
    assert ffmpeg.media_duration(streamed_mp3) == ffmpeg.media_duration(file_mp3)
    assert abs(ffmpeg.media_duration(streamed_mp3) - ffmpeg.media_duration(path)) < 0.1
    assert streamed_mp3.read_bytes() == file_mp3.read_bytes()
    assert not list(tmp_path.glob("source*"))  # nothing was downloaded


def test_moov_at_the_end_is_sent_first_with_its_chunk_offsets_moved(mongodb, media_dir, tmp_path):
    path = make_media(media_dir, "mp4_h264_aac_moov_end", seconds=5.0)
    original = path.read_bytes()
    assert box_order(original).index(b"moov") > box_order(original).index(b"mdat")
    source = staging.stage_source(storage.VIDEOS, store(path), workdir=tmp_path)
    assert isinstance(source, staging.StreamedSource)

    data = staged_bytes(source)
    assert len(data) == len(original)
    kinds = box_order(data)
    assert kinds.index(b"ftyp") < kinds.index(b"moov") < kinds.index(b"mdat")
    # Laid out like that, the bytes are a file ffmpeg reads with the same audio, to the last frame.
    staged = tmp_path / "staged.mp4"
    staged.write_bytes(data)
    from_staged, from_original = tmp_path / "staged.mp3", tmp_path / "original.mp3"
    ffmpeg.convert_to_mp3(staged, from_staged, duration=5.0)
    ffmpeg.convert_to_mp3(path, from_original, duration=5.0)
    assert from_staged.read_bytes() == from_original.read_bytes()
    assert abs(ffmpeg.media_duration(from_staged) - 5.0) < 0.1


def _with_box_renamed(data: bytes, old: bytes, new: bytes) -> bytes:
    moov = data.rindex(b"moov")
    position = data.index(old, moov)
    return data[:position] + new + data[position + len(old) :]


def _with_stco_count(data: bytes, count: int) -> bytes:
    position = data.index(b"stco", data.rindex(b"moov")) + 8  # past type, version and flags
    return data[:position] + struct.pack(">I", count) + data[position + 4 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: _with_box_renamed(data, b"stbl", b"cmov"), id="compressed-moov"),
        pytest.param(lambda data: _with_stco_count(data, 0x7FFFFFFF), id="offset-table-longer-than-its-box"),
        pytest.param(lambda data: _with_box_renamed(data, b"stco", b"xxxx"), id="a-track-without-offsets"),
    ],
)
def test_an_unusual_moov_is_downloaded_instead(mongodb, media_dir, tmp_path, damage):
    damaged = damage(make_media(media_dir, "mp4_h264_aac_moov_end").read_bytes())
    path = tmp_path / "damaged.mp4"
    path.write_bytes(damaged)
    source = staging.stage_source(storage.VIDEOS, store(path), workdir=tmp_path)
    assert source == tmp_path / "source"
    assert source.read_bytes() == damaged


@pytest.mark.parametrize("kind", ["mp3_audio", "random_bytes"])
def test_anything_else_is_downloaded_first(mongodb, media_dir, tmp_path, kind):
    # MP3 too: from a pipe ffmpeg misses the encoder's end padding and the result is a frame longer.
    path = make_random_bytes(tmp_path, 300_000) if kind == "random_bytes" else make_media(media_dir, kind)
    source = staging.stage_source(storage.VIDEOS, store(path), workdir=tmp_path)
    assert source == tmp_path / "source" and source.read_bytes() == path.read_bytes()


def test_a_failing_read_fails_the_conversion_and_leaves_no_mp3(mongodb, media_dir, tmp_path):
    file_id = store(make_media(media_dir, "mkv_vp9_opus"))
    source = staging.stage_source(storage.VIDEOS, file_id, workdir=tmp_path)
    storage.delete(storage.VIDEOS, file_id)  # gone between planning and streaming
    destination = tmp_path / "audio.mp3"
    with pytest.raises(storage.StoredFileNotFound):
        ffmpeg.convert_to_mp3(source, destination, duration=3.0)
    assert not destination.exists()


@pytest.fixture
def private_store(tmp_path, settings):
    """A SecantusDB server of the test's own, so it can be paused."""
    server = SecantusProcess(tmp_path / "data", tmp_path / "secantusd.log")
    server.start()
    settings.MONGODB_URI = server.uri + "&socketTimeoutMS=120000"
    settings.MONGODB_DB = f"test_{uuid.uuid4().hex[:12]}"
    storage.reset_client()
    try:
        yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        storage.reset_client()
        server.stop()


def test_a_stalled_read_fails_the_conversion_instead_of_hanging(private_store, media_dir, tmp_path):
    file_id = store(make_media(media_dir, "wav_pcm"))
    source = staging.stage_source(storage.VIDEOS, file_id, workdir=tmp_path)
    source.stall_seconds = 2.0
    destination = tmp_path / "audio.mp3"
    os.kill(private_store.process.pid, signal.SIGSTOP)  # the store stops answering mid-conversion
    with pytest.raises(storage.StorageError, match="stalled"):
        ffmpeg.convert_to_mp3(source, destination, duration=3.0, limits=ffmpeg.ChildLimits(wall_seconds=60))
    assert not destination.exists()
