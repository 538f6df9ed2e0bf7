"""GridFS storage of what a conversion reads and of the MP3s it makes: the only module that imports pymongo.

Every read and write streams in chunks, so no call holds a whole file in memory. Every
driver error becomes StorageError with a sentence, so callers never see pymongo types.
Settings are read when the client is first created (not at import), so tests can point
the module at another server with `settings` overrides and `reset_client()`.
"""

import datetime
import hashlib
import io
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import gridfs
import pymongo
from bson import ObjectId
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from gridfs.errors import NoFile
from pymongo.errors import ConnectionFailure, InvalidURI, PyMongoError

logger = logging.getLogger(__name__)

# GridFS bucket names: the uploaded videos themselves (only with KEEP_SOURCE_VIDEOS), the audio
# sources and cover frames extracted from them at upload, and the MP3s.
VIDEOS = "videos"
SOURCES = "sources"
MP3S = "mp3s"

# GridFS's default chunk size; reads and writes move this much at a time, so memory per
# transfer stays at about one chunk however large the file is.
CHUNK_SIZE = 255 * 1024
# Short enough that a request fails with a sentence instead of hanging on a dead server;
# used only when the URI does not choose its own.
DEFAULT_TIMEOUTS_MS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}

UNREACHABLE = "The file store (MongoDB) is unreachable; try again in a minute."
FAILED = "The file store (MongoDB) could not complete the operation; try again in a minute."
NOT_FOUND = "The file is no longer stored."

_OBJECT_ID_HEX = re.compile(r"[0-9a-fA-F]{24}")


class StorageError(Exception):
    """The file store failed or is unreachable; str() is a sentence for the user."""


class StoredFileNotFound(StorageError):
    """No stored file has this id (or the id is malformed)."""


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    size: int
    sha256: str


# --- the client ------------------------------------------------------------------------

_client: pymongo.MongoClient | None = None
_client_lock = threading.Lock()


def _uri_sets(uri: str, option: str) -> bool:
    # A plain search rather than pymongo's parse_uri, which resolves mongodb+srv:// in DNS.
    return re.search(rf"[?&]{option}=", uri, re.IGNORECASE) is not None


def _new_client() -> pymongo.MongoClient:
    uri = settings.MONGODB_URI
    if not uri:
        from core import embedded

        uri = embedded.mongodb_uri()
    # Keyword options override the URI's in pymongo, so only pass the ones the URI leaves unset.
    options: dict[str, Any] = {name: value for name, value in DEFAULT_TIMEOUTS_MS.items() if not _uri_sets(uri, name)}
    if not _uri_sets(uri, "appname"):
        options["appname"] = "videomp3"
    try:
        return pymongo.MongoClient(uri, **options)
    except InvalidURI as exc:
        # The URI may hold a password: chain the driver's error instead of quoting the URI.
        raise ImproperlyConfigured("MONGODB_URI is not a valid MongoDB connection string.") from exc


def _get_client() -> pymongo.MongoClient:
    global _client
    client = _client  # one read, so a concurrent reset_client() cannot hand us None
    if client is None:
        with _client_lock:  # creation may start the embedded server: once, however many threads ask
            if _client is None:
                _client = _new_client()
            client = _client
    return client


def _database():
    return _get_client()[settings.MONGODB_DB]


def _bucket(name: str) -> gridfs.GridFSBucket:
    return gridfs.GridFSBucket(_database(), bucket_name=name, chunk_size_bytes=CHUNK_SIZE)


def reset_client() -> None:
    """Close and forget the client (tests switch servers; a forked process must not share sockets)."""
    global _client
    with _client_lock:
        client, _client = _client, None
    if client is not None:
        client.close()


@contextmanager
def _driver_errors(action: str):
    """Turn every driver error into StorageError with a sentence; log the driver's detail for operators."""
    try:
        yield
    except NoFile:
        raise StoredFileNotFound(NOT_FOUND) from None
    except ConnectionFailure as exc:  # also AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
        logger.warning("MongoDB unreachable while %s: %s", action, exc)
        raise StorageError(UNREACHABLE) from exc
    except PyMongoError as exc:  # OperationFailure, CorruptGridFile, WriteError...
        logger.warning("MongoDB failed while %s: %s", action, exc)
        raise StorageError(FAILED) from exc


def _stored_id(file_id: str | ObjectId) -> ObjectId | str:
    """The _id as stored: videos get ObjectIds (like the original system's fids), MP3s ids derived from their job.

    Anything that is not a non-empty string is refused, so an id can never smuggle a query operator.
    """
    if isinstance(file_id, ObjectId):
        return file_id
    if not isinstance(file_id, str) or not file_id:
        raise StoredFileNotFound(NOT_FOUND)
    return ObjectId(file_id) if _OBJECT_ID_HEX.fullmatch(file_id) else file_id


# --- administration ------------------------------------------------------------------------


def ping() -> None:
    """Raise StorageError unless the server answers."""
    with _driver_errors("pinging"):
        _database().command("ping")


def drop_database() -> None:
    """Drop settings.MONGODB_DB (tests' cleanup)."""
    with _driver_errors("dropping the database"):
        _get_client().drop_database(settings.MONGODB_DB)


# --- writing -------------------------------------------------------------------------------


# Chunks sent per insert: about 4 MiB in memory at a time. pymongo's GridIn buffers up to 48 MiB of
# chunks before one insert_many and then encodes them, which put ~90 MiB on top of a web worker.
WRITE_BATCH_CHUNKS = 16

_indexed_buckets: set[tuple[str, str]] = set()


def _ensure_indexes(bucket: str) -> None:
    """The indexes the GridFS spec asks for (GridIn would create them on a first write); once per process."""
    key = (settings.MONGODB_DB, bucket)
    if key in _indexed_buckets:
        return
    database = _database()
    database[f"{bucket}.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
    database[f"{bucket}.files"].create_index([("filename", 1), ("uploadDate", 1)])
    _indexed_buckets.add(key)


class StoredFileWriter:
    """A file being stored chunk by chunk (GridFS layout: chunks first, the files document last).

    write() as the bytes arrive, then close() -> StoredFile, or abort() to remove what was written.
    Memory stays at about WRITE_BATCH_CHUNKS chunks whatever the size.
    """

    def __init__(self, bucket: str, stored_id, *, filename: str, content_type: str, metadata: dict | None = None):
        self.bucket = bucket
        self.stored_id = stored_id
        self.filename = filename
        self.metadata = {**(metadata or {}), "contentType": content_type}
        self.size = 0
        self.closed = False
        self._digest = hashlib.sha256()
        self._pending = bytearray()
        self._batch: list[dict] = []
        self._next_n = 0
        with _driver_errors(f"storing {bucket}/{stored_id}"):
            _ensure_indexes(bucket)

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        self._pending += data
        if len(self._pending) >= CHUNK_SIZE:
            whole = len(self._pending) - len(self._pending) % CHUNK_SIZE
            for start in range(0, whole, CHUNK_SIZE):
                self._add_chunk(bytes(self._pending[start : start + CHUNK_SIZE]))
            del self._pending[:whole]

    def _add_chunk(self, data: bytes) -> None:
        self._batch.append({"_id": ObjectId(), "files_id": self.stored_id, "n": self._next_n, "data": data})
        self._next_n += 1
        if len(self._batch) >= WRITE_BATCH_CHUNKS:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            with _driver_errors(f"storing {self.bucket}/{self.stored_id}"):
                _database()[f"{self.bucket}.chunks"].insert_many(self._batch, ordered=True)
            self._batch = []

    def close(self, *, filename: str | None = None, metadata: dict | None = None) -> StoredFile:
        """Write the last chunk and the files document (filename and metadata may be completed now)."""
        if filename is not None:
            self.filename = filename
        self.metadata.update(metadata or {})
        if self._pending:
            self._add_chunk(bytes(self._pending))
            self._pending = bytearray()
        self._flush()
        document = {
            "_id": self.stored_id,
            "length": self.size,
            "chunkSize": CHUNK_SIZE,
            "uploadDate": datetime.datetime.now(datetime.UTC).replace(microsecond=0),
            "filename": self.filename,
            "metadata": self.metadata,
        }
        with _driver_errors(f"storing {self.bucket}/{self.stored_id}"):
            _database()[f"{self.bucket}.files"].insert_one(document)
        self.closed = True
        return StoredFile(file_id=str(self.stored_id), size=self.size, sha256=self._digest.hexdigest())

    def abort(self) -> None:
        """Remove the chunks written so far; quietly, since the error that led here matters more."""
        self.closed = True
        self._batch, self._pending = [], bytearray()
        try:
            _delete_by_id(self.bucket, self.stored_id)
        except PyMongoError as exc:  # the orphan chunks are removed by the cleanup later
            logger.warning("could not remove the partial upload %s/%s: %s", self.bucket, self.stored_id, exc)


def open_writer(
    bucket: str, *, filename: str, content_type: str, file_id: str | None = None, metadata: dict | None = None
) -> StoredFileWriter:
    """A StoredFileWriter; an explicit file_id replaces the file that had it (once the new one is closed)."""
    if file_id is not None and (not isinstance(file_id, str) or not file_id):
        raise ValueError(f"file_id must be a non-empty string, not {file_id!r}")
    stored_id = _stored_id(file_id) if file_id is not None else ObjectId()
    if file_id is not None:
        with _driver_errors(f"storing {bucket}/{stored_id}"):
            _delete_by_id(bucket, stored_id)
    return StoredFileWriter(bucket, stored_id, filename=filename, content_type=content_type, metadata=metadata)


def save_stream(
    bucket: str,
    stream: BinaryIO,
    *,
    filename: str,
    content_type: str,
    file_id: str | None = None,
    metadata: dict | None = None,
) -> StoredFile:
    """Store a stream chunk by chunk and return its id, size and sha256.

    An explicit file_id replaces the file that had it (a retried conversion replaces its MP3
    instead of adding one). A failure mid-way removes what was written: a store failure raises
    StorageError, an error raised by the stream itself propagates unchanged.
    """
    writer = open_writer(bucket, filename=filename, content_type=content_type, file_id=file_id, metadata=metadata)
    try:
        while chunk := stream.read(CHUNK_SIZE):
            writer.write(chunk)
        return writer.close()
    except BaseException:
        writer.abort()
        raise


def save_path(
    bucket: str,
    path: str | os.PathLike,
    *,
    filename: str,
    content_type: str,
    file_id: str | None = None,
    metadata: dict | None = None,
) -> StoredFile:
    """save_stream() for a local file."""
    with open(path, "rb") as source:
        return save_stream(
            bucket, source, filename=filename, content_type=content_type, file_id=file_id, metadata=metadata
        )


# --- reading -------------------------------------------------------------------------------


class StoredFileReader(io.RawIOBase):
    """A stored file opened for reading: readable, seekable, with .length, and StorageError on driver errors.

    A thin wrapper over GridOut so that reading a file callers hold open still never raises pymongo types.
    """

    def __init__(self, grid_out: gridfs.GridOut):
        super().__init__()
        self._grid_out = grid_out

    @property
    def file_id(self) -> str:
        return str(self._grid_out._id)

    @property
    def length(self) -> int:
        return int(self._grid_out.length)

    @property
    def filename(self) -> str | None:
        return self._grid_out.filename

    @property
    def metadata(self) -> dict:
        return dict(self._grid_out.metadata or {})

    @property
    def content_type(self) -> str | None:
        return self.metadata.get("contentType")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with _driver_errors(f"reading {self.file_id}"):
            return self._grid_out.read(-1 if size is None else size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._grid_out.seek(offset, whence)

    def tell(self) -> int:
        return self._grid_out.tell()

    def close(self) -> None:
        if not self.closed:
            self._grid_out.close()
        super().close()


def _open_grid_out(bucket: str, file_id: str) -> gridfs.GridOut:
    stored_id = _stored_id(file_id)
    with _driver_errors(f"opening {bucket}/{stored_id}"):
        return _bucket(bucket).open_download_stream(stored_id)  # raises NoFile now, not at first read


def open_file(bucket: str, file_id: str) -> StoredFileReader:
    """The stored file, readable and seekable, with .length; StoredFileNotFound for an unknown or malformed id."""
    return StoredFileReader(_open_grid_out(bucket, file_id))


# Chunks fetched per round trip when reading: 16 x 255 KiB = about 4 MiB in memory at a time (a
# cursor's default first batch of 101 chunks would hold 25 MiB).
READ_BATCH_CHUNKS = 16


def iter_range(
    bucket: str, file_id: str, start: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
) -> Iterator[bytes]:
    """Bytes start..end (inclusive; None = to the end) in pieces of at most chunk_size, for HTTP Range.

    The file is looked up now, so StoredFileNotFound raises here, before a response has started.
    """
    if start < 0 or (end is not None and end < start) or chunk_size <= 0:
        raise ValueError(f"invalid byte range {start}-{end}")
    stored_id = _stored_id(file_id)
    with _driver_errors(f"opening {bucket}/{stored_id}"):
        document = _database()[f"{bucket}.files"].find_one({"_id": stored_id}, {"length": 1, "chunkSize": 1})
    if document is None:
        raise StoredFileNotFound(NOT_FOUND)
    length, stored_chunk_size = int(document["length"]), int(document["chunkSize"])
    last = length - 1 if end is None else min(end, length - 1)
    return _iter_chunks(bucket, stored_id, start, last, stored_chunk_size, chunk_size)


def _iter_chunks(bucket: str, stored_id, start: int, last: int, stored_chunk_size: int, piece_size: int):
    """The chunk documents themselves, by an n range the server answers from its (files_id, n) index.

    Not GridOut: its query ({"files_id": {"$eq": ...}, "n": {"$gte": ...}}) costs SecantusDB a scan,
    about 1.5 s to reach the end of a 543 MiB file, and reading a whole file through it took 2.9 s
    against 1.0 s this way (measured; see bench/README.md).
    """
    if last < start:
        return
    first_n, last_n = start // stored_chunk_size, last // stored_chunk_size
    with _driver_errors(f"reading {bucket}/{stored_id}"):
        cursor = (
            _database()[f"{bucket}.chunks"]
            .find({"files_id": stored_id, "n": {"$gte": first_n, "$lte": last_n}}, {"n": 1, "data": 1})
            .sort("n", 1)
            .batch_size(READ_BATCH_CHUNKS)
        )
        try:
            expected = first_n
            for chunk in cursor:
                if chunk["n"] != expected:
                    raise gridfs.errors.CorruptGridFile(f"missing chunk {expected} of {stored_id}")
                offset, data = expected * stored_chunk_size, chunk["data"]
                if offset < start or offset + len(data) > last + 1 or len(data) > piece_size:
                    view = memoryview(data)[max(0, start - offset) : last + 1 - offset]
                    for position in range(0, len(view), piece_size):
                        yield bytes(view[position : position + piece_size])
                else:
                    yield data  # a whole chunk, as the driver decoded it: no copy
                expected += 1
            if expected != last_n + 1:
                raise gridfs.errors.CorruptGridFile(f"missing chunk {expected} of {stored_id}")
        finally:
            cursor.close()


def copy_to_path(bucket: str, file_id: str, path: str | os.PathLike) -> int:
    """Stream a stored file to local disk and return its size; the file appears whole or not at all."""
    partial = f"{os.fspath(path)}.part"
    size = 0
    try:
        with open(partial, "wb") as target:
            for chunk in iter_range(bucket, file_id, chunk_size=CHUNK_SIZE):
                target.write(chunk)
                size += len(chunk)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return size


def file_lengths(bucket: str, file_ids) -> dict[str, int]:
    """{file id: length in bytes} of the stored files among file_ids, in one query; absent ids are left out."""
    stored_ids = {}
    for file_id in file_ids:
        try:
            stored_ids[_stored_id(file_id)] = file_id
        except StoredFileNotFound:
            continue
    if not stored_ids:
        return {}
    with _driver_errors(f"looking up {bucket}"):
        documents = _database()[f"{bucket}.files"].find({"_id": {"$in": list(stored_ids)}}, {"length": 1})
        return {stored_ids[document["_id"]]: int(document["length"]) for document in documents}


def file_exists(bucket: str, file_id: str) -> bool:
    try:
        stored_id = _stored_id(file_id)
    except StoredFileNotFound:
        return False
    with _driver_errors(f"looking up {bucket}/{stored_id}"):
        return _database()[f"{bucket}.files"].count_documents({"_id": stored_id}, limit=1) > 0


# --- deleting ------------------------------------------------------------------------------


def _delete_by_id(bucket: str, stored_id: ObjectId | str) -> bool:
    database = _database()
    removed = database[f"{bucket}.files"].delete_one({"_id": stored_id}).deleted_count
    # Chunks go too even without a files document: an interrupted write can leave only chunks.
    database[f"{bucket}.chunks"].delete_many({"files_id": stored_id})
    return bool(removed)


def delete(bucket: str, file_id: str) -> bool:
    """Remove a file and its chunks; False when there was no such file."""
    try:
        stored_id = _stored_id(file_id)
    except StoredFileNotFound:
        return False
    with _driver_errors(f"deleting {bucket}/{stored_id}"):
        return _delete_by_id(bucket, stored_id)


# --- finding leftovers ---------------------------------------------------------------------


def files_uploaded_before(bucket: str, cutoff) -> Iterator[tuple[str, dict]]:
    """(file id, metadata) of every file stored before `cutoff` (an aware datetime)."""
    with _driver_errors(f"listing {bucket}"):
        for document in _database()[f"{bucket}.files"].find({"uploadDate": {"$lt": cutoff}}, {"metadata": 1}):
            yield str(document["_id"]), document.get("metadata") or {}


def file_ids_with_prefix(bucket: str, prefix: str) -> set[str]:
    """Ids starting with `prefix` of the files, and of chunks an interrupted write left without a file
    (string ids only, such as the MP3s' "mp3-<job>-<attempt>")."""
    pattern = {"$regex": "^" + re.escape(prefix)}
    with _driver_errors(f"listing {bucket}"):
        database = _database()
        ids = {str(document["_id"]) for document in database[f"{bucket}.files"].find({"_id": pattern}, {"_id": 1})}
        ids |= {str(file_id) for file_id in database[f"{bucket}.chunks"].distinct("files_id", {"files_id": pattern})}
    return ids


def orphan_chunk_file_ids(bucket: str, cutoff) -> list[str]:
    """Ids named by chunks that have no file document and were written before `cutoff`:
    what an interrupted write left behind (a write in progress also has no file document yet)."""
    with _driver_errors(f"looking for orphan chunks in {bucket}"):
        database = _database()
        known = set(database[f"{bucket}.files"].distinct("_id"))
        orphans = {
            chunk["files_id"]
            for chunk in database[f"{bucket}.chunks"].find({"files_id": {"$nin": list(known)}}, {"files_id": 1})
            if chunk["_id"].generation_time < cutoff
        }
    return [str(file_id) for file_id in orphans]
