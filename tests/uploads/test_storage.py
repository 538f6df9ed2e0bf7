"""uploads.storage against a real SecantusDB server (MongoDB wire protocol)."""

import hashlib
import io
import os

import pytest

from tests.support.pipeline import stored_file_count
from tests.support.services import free_port
from uploads import storage

MIB = 1024 * 1024


class RecordingStream(io.RawIOBase):
    """A generated stream that remembers the largest read() asked of it."""

    def __init__(self, size: int, fail_after: int | None = None):
        self.remaining = size
        self.fail_after = fail_after
        self.delivered = 0
        self.largest_read = 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.largest_read = max(self.largest_read, size if size >= 0 else self.remaining)
        if self.fail_after is not None and self.delivered >= self.fail_after:
            raise OSError("client went away")
        count = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= count
        self.delivered += count
        return bytes(count)


def test_round_trip_of_a_multi_chunk_file(mongodb):
    content = os.urandom(3 * MIB + 123)
    stored = storage.save_stream(storage.VIDEOS, io.BytesIO(content), filename="a.mp4", content_type="video/mp4")
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    with storage.open_file(storage.VIDEOS, stored.file_id) as grid_out:
        assert grid_out.length == len(content)
        assert grid_out.read() == content
    assert storage.file_exists(storage.VIDEOS, stored.file_id)


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (0, None), (100, 300 * 1024), (storage.CHUNK_SIZE - 5, storage.CHUNK_SIZE + 5), (3 * MIB - 1, None)],
)
def test_iter_range_returns_exactly_the_asked_bytes(mongodb, start, end):
    content = os.urandom(3 * MIB)
    file_id = storage.save_stream(storage.MP3S, io.BytesIO(content), filename="a.mp3", content_type="audio/mpeg").file_id
    expected = content[start : (end + 1 if end is not None else None)]
    assert b"".join(storage.iter_range(storage.MP3S, file_id, start, end)) == expected


def test_copy_to_path(mongodb, tmp_path):
    content = os.urandom(MIB + 7)
    file_id = storage.save_stream(storage.VIDEOS, io.BytesIO(content), filename="a", content_type="video/mp4").file_id
    target = tmp_path / "copy"
    assert storage.copy_to_path(storage.VIDEOS, file_id, target) == len(content)
    assert target.read_bytes() == content
    assert not (tmp_path / "copy.part").exists()


def test_an_explicit_id_replaces_the_previous_file(mongodb):
    for content in (b"first" * 100_000, b"second"):
        storage.save_stream(storage.MP3S, io.BytesIO(content), filename="x.mp3", content_type="audio/mpeg", file_id="mp3-job")
    assert b"".join(storage.iter_range(storage.MP3S, "mp3-job")) == b"second"
    assert stored_file_count(storage.MP3S) == 2  # one files document, one chunk


def test_delete_and_missing_files(mongodb):
    file_id = storage.save_stream(storage.VIDEOS, io.BytesIO(b"x" * 10), filename="a", content_type="video/mp4").file_id
    assert storage.delete(storage.VIDEOS, file_id) is True
    assert storage.delete(storage.VIDEOS, file_id) is False
    assert stored_file_count(storage.VIDEOS) == 0
    for missing in (file_id, "not-an-id", "", "{'$ne': null}"):
        with pytest.raises(storage.StoredFileNotFound):
            storage.open_file(storage.VIDEOS, missing)


def test_a_stream_failing_midway_leaves_nothing_behind(mongodb):
    stream = RecordingStream(10 * MIB, fail_after=3 * MIB)
    with pytest.raises(OSError):
        storage.save_stream(storage.VIDEOS, stream, filename="a", content_type="video/mp4")
    assert stored_file_count(storage.VIDEOS) == 0


def test_writes_read_in_bounded_chunks(mongodb):
    stream = RecordingStream(50 * MIB)
    stored = storage.save_stream(storage.VIDEOS, stream, filename="big", content_type="video/mp4")
    assert stored.size == 50 * MIB
    assert stream.largest_read <= storage.CHUNK_SIZE


def test_unreachable_store_is_a_storage_error_with_a_sentence(settings):
    settings.MONGODB_URI = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    storage.reset_client()
    try:
        with pytest.raises(storage.StorageError) as error:
            storage.save_stream(storage.VIDEOS, io.BytesIO(b"x"), filename="a", content_type="video/mp4")
        assert "unreachable" in str(error.value)
        with pytest.raises(storage.StorageError):
            storage.ping()
    finally:
        storage.reset_client()
