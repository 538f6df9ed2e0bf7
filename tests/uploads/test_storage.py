"""core.storage against a real SecantusDB server (MongoDB wire protocol)."""

import hashlib
import io
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core import storage
from tests.support.services import SecantusProcess, free_port

MIB = 1024 * 1024


def documents(bucket: str) -> tuple[int, int]:
    """(files, chunks) in a bucket, read with pymongo directly rather than through the code under test."""
    import pymongo

    with pymongo.MongoClient(settings.MONGODB_URI) as client:
        database = client[settings.MONGODB_DB]
        return database[f"{bucket}.files"].count_documents({}), database[f"{bucket}.chunks"].count_documents({})


class GeneratedStream(io.RawIOBase):
    """A stream of zeros that remembers the largest read() asked of it and can fail part-way."""

    def __init__(self, size: int, *, fail_after: int | None = None, on_reaching=None):
        self.remaining = size
        self.fail_after = fail_after
        self.on_reaching = on_reaching  # (offset, callback): call once the stream has delivered offset bytes
        self.delivered = 0
        self.largest_read = 0

    def readable(self):
        return True

    def read(self, size=-1):
        self.largest_read = max(self.largest_read, size if size >= 0 else self.remaining)
        if self.fail_after is not None and self.delivered >= self.fail_after:
            raise OSError("client went away")
        if self.on_reaching and self.delivered >= self.on_reaching[0]:
            callback, self.on_reaching = self.on_reaching[1], None
            callback()
        count = self.remaining if size < 0 else min(size, self.remaining)
        self.remaining -= count
        self.delivered += count
        return bytes(count)


def save(bucket, content: bytes, **kwargs) -> storage.StoredFile:
    kwargs.setdefault("filename", "a.bin")
    kwargs.setdefault("content_type", "application/octet-stream")
    return storage.save_stream(bucket, io.BytesIO(content), **kwargs)


def test_round_trip_of_a_multi_chunk_file(mongodb):
    content = os.urandom(3 * MIB + 123)
    stored = save(storage.VIDEOS, content, filename="a.mp4", content_type="video/mp4", metadata={"job_id": "j"})
    assert stored.size == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert len(stored.file_id) == 24  # a video gets an ObjectId, as its hex string
    assert documents(storage.VIDEOS) == (1, 13)  # 3 MiB + 123 bytes in 255 KiB chunks
    with storage.open_file(storage.VIDEOS, stored.file_id) as stored_file:
        assert stored_file.length == len(content)
        assert stored_file.filename == "a.mp4"
        assert stored_file.content_type == "video/mp4"
        assert stored_file.metadata["job_id"] == "j"
        assert stored_file.read() == content
        stored_file.seek(MIB)
        assert stored_file.read(10) == content[MIB : MIB + 10]
    assert storage.file_exists(storage.VIDEOS, stored.file_id)
    assert storage.file_exists(storage.VIDEOS, stored.file_id.upper())  # hex ids are case-insensitive


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 0),  # first byte
        (0, None),  # everything
        (storage.CHUNK_SIZE - 5, 2 * storage.CHUNK_SIZE + 5),  # a span across two chunk boundaries
        (3 * MIB - 1, 3 * MIB - 1),  # last byte
        (3 * MIB - 10, 5 * MIB),  # an end past the file stops at the file's end
    ],
)
def test_iter_range_returns_exactly_the_asked_bytes(mongodb, start, end):
    content = os.urandom(3 * MIB)
    file_id = save(storage.MP3S, content).file_id
    chunks = list(storage.iter_range(storage.MP3S, file_id, start, end, chunk_size=100_000))
    assert b"".join(chunks) == content[start : (end + 1 if end is not None else None)]
    assert max(len(chunk) for chunk in chunks) <= 100_000


def test_iter_range_refuses_bad_ranges_and_missing_files_before_iterating(mongodb):
    file_id = save(storage.MP3S, b"abc").file_id
    with pytest.raises(ValueError):
        storage.iter_range(storage.MP3S, file_id, 2, 1)
    with pytest.raises(ValueError):
        storage.iter_range(storage.MP3S, file_id, -1)
    with pytest.raises(storage.StoredFileNotFound):
        storage.iter_range(storage.MP3S, "mp3-missing")  # raises at the call, before a response starts


def test_copy_to_path(mongodb, tmp_path):
    content = os.urandom(MIB + 7)
    file_id = save(storage.VIDEOS, content).file_id
    target = tmp_path / "copy"
    assert storage.copy_to_path(storage.VIDEOS, file_id, target) == len(content)
    assert target.read_bytes() == content
    assert not (tmp_path / "copy.part").exists()
    with pytest.raises(storage.StoredFileNotFound):
        storage.copy_to_path(storage.VIDEOS, "ffffffffffffffffffffffff", tmp_path / "missing")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["copy"]


def test_an_explicit_id_replaces_the_previous_file(mongodb):
    first = save(storage.MP3S, b"first" * 200_000, file_id="mp3-job")  # 1 MB: 4 chunks
    second = save(storage.MP3S, b"second", file_id="mp3-job")
    assert first.file_id == second.file_id == "mp3-job"
    assert b"".join(storage.iter_range(storage.MP3S, "mp3-job")) == b"second"
    assert documents(storage.MP3S) == (1, 1)  # one files document, one chunk: nothing of the first is left


def test_delete_and_missing_files(mongodb):
    file_id = save(storage.VIDEOS, b"x" * 10).file_id
    assert storage.delete(storage.VIDEOS, file_id) is True
    assert storage.delete(storage.VIDEOS, file_id) is False
    assert storage.delete(storage.VIDEOS, "never-stored") is False
    assert documents(storage.VIDEOS) == (0, 0)
    assert not storage.file_exists(storage.VIDEOS, file_id)


@pytest.mark.parametrize("missing", ["65f0c0ffee0000000000beef", "not-an-id", "", "{'$ne': null}", {"$ne": None}, None])
def test_unknown_and_malformed_ids_are_not_found(mongodb, missing):
    save(storage.VIDEOS, b"something stored")  # so an id that matched anything would find it
    with pytest.raises(storage.StoredFileNotFound) as error:
        storage.open_file(storage.VIDEOS, missing)
    assert str(error.value) == "The file is no longer stored."
    assert not storage.file_exists(storage.VIDEOS, missing)
    assert storage.delete(storage.VIDEOS, missing) is False
    assert documents(storage.VIDEOS) == (1, 1)


def test_a_stream_failing_midway_leaves_nothing_behind(mongodb):
    stream = GeneratedStream(10 * MIB, fail_after=3 * MIB)  # 12 chunks are written before it fails
    with pytest.raises(OSError, match="client went away"):  # the stream's own error, not the store's
        storage.save_stream(storage.VIDEOS, stream, filename="a", content_type="video/mp4")
    assert documents(storage.VIDEOS) == (0, 0)


def test_writes_read_the_stream_in_bounded_chunks(mongodb):
    stream = GeneratedStream(50 * MIB)
    stored = storage.save_stream(storage.VIDEOS, stream, filename="big", content_type="video/mp4")
    assert stored.size == 50 * MIB
    assert stored.sha256 == hashlib.sha256(bytes(50 * MIB)).hexdigest()
    assert stream.largest_read <= storage.CHUNK_SIZE


def test_unreachable_store_is_a_storage_error_with_a_sentence(settings):
    settings.MONGODB_URI = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    storage.reset_client()
    try:
        for call in (
            lambda: storage.save_stream(storage.VIDEOS, io.BytesIO(b"x"), filename="a", content_type="video/mp4"),
            lambda: storage.open_file(storage.VIDEOS, "mp3-x"),
            lambda: storage.delete(storage.VIDEOS, "mp3-x"),
            storage.ping,
        ):
            with pytest.raises(storage.StorageError) as error:
                call()
            assert not isinstance(error.value, storage.StoredFileNotFound)
            assert str(error.value) == "The file store (MongoDB) is unreachable; try again in a minute."
    finally:
        storage.reset_client()


def test_timeouts_in_the_uri_win_over_the_defaults(settings):
    settings.MONGODB_URI = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    storage.reset_client()
    try:
        assert storage._get_client().options.server_selection_timeout == 0.3
        settings.MONGODB_URI = f"mongodb://127.0.0.1:{free_port()}/"
        storage.reset_client()
        assert storage._get_client().options.server_selection_timeout == 5.0
    finally:
        storage.reset_client()


def test_the_server_dying_mid_write_is_a_storage_error_and_a_retry_replaces_the_remains(tmp_path, settings):
    """A private SecantusDB process, stopped while a file is being written, then started again."""
    server = SecantusProcess(tmp_path / "data", tmp_path / "secantusd.log")
    try:
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(f"SecantusDB could not start: {exc}")
    settings.MONGODB_URI = f"mongodb://127.0.0.1:{server.port}/?serverSelectionTimeoutMS=1000"
    settings.MONGODB_DB = "fault"
    storage.reset_client()
    try:
        stream = GeneratedStream(4 * MIB, on_reaching=(2 * MIB, server.stop))
        with pytest.raises(storage.StorageError) as error:
            storage.save_stream(storage.MP3S, stream, filename="a.mp3", content_type="audio/mpeg", file_id="mp3-job")
        assert str(error.value) == "The file store (MongoDB) is unreachable; try again in a minute."

        server.start()
        # The abort could not reach the server: chunks written before the stop may remain, a file never.
        assert documents(storage.MP3S)[0] == 0
        assert not storage.file_exists(storage.MP3S, "mp3-job")
        stored = save(storage.MP3S, b"retried", file_id="mp3-job")
        assert stored.size == 7
        assert documents(storage.MP3S) == (1, 1)  # the retry removed them
        assert storage.open_file(storage.MP3S, "mp3-job").read() == b"retried"
    finally:
        storage.reset_client()
        server.stop()


def test_an_invalid_uri_is_a_configuration_error(settings):
    settings.MONGODB_URI = "http://user:secret@example.com/"
    storage.reset_client()
    try:
        with pytest.raises(ImproperlyConfigured) as error:
            storage.ping()
        assert "secret" not in str(error.value)
    finally:
        storage.reset_client()


def test_an_empty_uri_starts_the_embedded_server_under_var(settings, tmp_path, monkeypatch):
    from core import embedded

    monkeypatch.setattr(embedded, "_server", None)  # this test's own server, whatever ran before
    settings.MONGODB_URI = ""
    settings.MONGODB_DB = "embedded"
    settings.VAR_DIR = tmp_path
    storage.reset_client()
    try:
        stored = save(storage.VIDEOS, b"embedded")
        assert storage.open_file(storage.VIDEOS, stored.file_id).read() == b"embedded"
        assert embedded.mongodb_uri() == embedded.mongodb_uri()  # one server per process
        assert (tmp_path / "mongodb" / "WiredTiger.lock").exists()

        # A second process on the same var/ cannot have the data; it says why.
        script = (
            f"from django.conf import settings; settings.configure(VAR_DIR={str(tmp_path)!r})\n"
            "from core import embedded\n"
            "embedded.mongodb_uri()\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", script], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60
        )
        assert other.returncode != 0
        assert "Another videomp3 process is using" in other.stderr and "var/mongodb" in other.stderr
    finally:
        storage.reset_client()
        if embedded._server is not None:
            embedded._server.stop()


def test_a_writer_stores_what_arrives_and_abort_leaves_nothing(mongodb):
    content = os.urandom(3 * storage.CHUNK_SIZE + 11)
    writer = storage.open_writer(storage.VIDEOS, filename="a.bin", content_type="video/mp4")
    for start in range(0, len(content), 100_000):  # pieces that do not line up with chunks
        writer.write(content[start : start + 100_000])
    stored = writer.close(filename="b.mp4", metadata={"job_id": "j"})
    assert (stored.size, stored.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    with storage.open_file(storage.VIDEOS, stored.file_id) as reader:
        assert reader.read() == content and reader.filename == "b.mp4"
        assert reader.metadata == {"job_id": "j", "contentType": "video/mp4"}

    aborted = storage.open_writer(storage.VIDEOS, filename="c.bin", content_type="video/mp4")
    aborted.write(os.urandom(storage.WRITE_BATCH_CHUNKS * storage.CHUNK_SIZE + 1))  # one batch reached the store
    aborted.abort()
    assert documents(storage.VIDEOS) == (1, 4)  # only the first file's four chunks
