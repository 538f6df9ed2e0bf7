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
import time
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


# --- resumable (tus) uploads in progress ----------------------------------------------------

# Uploads still arriving, each a GridFS file of this bucket that grows PATCH by PATCH: its files document
# exists from creation, with `length` the bytes received so far and the upload's state in `metadata`, so
# every web replica sees the same offset, and a resumed PATCH may land on any of them.
TUS_UPLOADS = "tus_uploads"

RECEIVING = "receiving"  # bytes still arriving
FINISHING = "finishing"  # all bytes arrived; a web process is turning them into a job
FINISHED = "finished"  # a job was made of it; the bytes are gone, the record names the job until it expires


class PartialUploadNotFound(StorageError):
    """No unexpired upload in progress has this id."""


class PartialUploadBusy(StorageError):
    """Another request is writing to this upload right now."""


class PartialOffsetMismatch(StorageError):
    """The client's offset is not the upload's: it holds `offset` bytes (or is no longer receiving)."""

    def __init__(self, sentence: str, *, offset: int):
        super().__init__(sentence)
        self.offset = offset


class PartialChecksumMismatch(StorageError):
    """The bytes that arrived do not match the checksum the client sent with them; none were kept."""


@dataclass(frozen=True)
class PartialUpload:
    upload_id: str
    owner_id: int
    length: int
    offset: int
    expires: datetime.datetime
    state: str
    info: dict  # what the client declared at creation (its name, options...): the caller's own keys
    job_id: str | None = None


def _aware(moment: datetime.datetime) -> datetime.datetime:
    """MongoDB hands back naive UTC datetimes."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _partial_from(document: dict) -> PartialUpload:
    state = document["metadata"]
    return PartialUpload(
        upload_id=str(document["_id"]),
        owner_id=state["owner_id"],
        length=state["upload_length"],
        offset=state["offset"],
        expires=_aware(state["expires"]),
        state=state["state"],
        info=dict(state.get("info") or {}),
        job_id=state.get("job_id"),
    )


def _partial_id(upload_id: str) -> ObjectId:
    if not isinstance(upload_id, str) or not _OBJECT_ID_HEX.fullmatch(upload_id):
        raise PartialUploadNotFound("No upload in progress has this id; create a new upload.")
    return ObjectId(upload_id)


def partial_create(*, owner_id: int, length: int, expires: datetime.datetime, info: dict) -> PartialUpload:
    """An empty upload of `length` bytes, receiving until `expires`."""
    document = {
        "_id": ObjectId(),
        "length": 0,
        "chunkSize": CHUNK_SIZE,
        "uploadDate": _now().replace(microsecond=0),
        "filename": str(info.get("filename") or "upload"),
        "metadata": {
            "state": RECEIVING,
            "owner_id": owner_id,
            "upload_length": length,
            "offset": 0,
            "expires": expires,
            "info": info,
            "lock": None,
            "lock_until": None,
        },
    }
    with _driver_errors(f"creating an upload in {TUS_UPLOADS}"):
        _ensure_indexes(TUS_UPLOADS)
        _database()[f"{TUS_UPLOADS}.files"].insert_one(document)
    return _partial_from(document)


def partial_get(upload_id: str, *, now: datetime.datetime | None = None) -> PartialUpload:
    """The upload, unless it expired (PartialUploadNotFound)."""
    stored_id = _partial_id(upload_id)
    with _driver_errors(f"reading upload {stored_id}"):
        document = _database()[f"{TUS_UPLOADS}.files"].find_one({"_id": stored_id})
    if document is None or _aware(document["metadata"]["expires"]) <= (now or _now()):
        raise PartialUploadNotFound("No upload in progress has this id (it may have expired); create a new upload.")
    return _partial_from(document)


def partial_count_active(*, owner_id: int, now: datetime.datetime | None = None) -> int:
    """The owner's uploads still arriving or being finished, expired ones left out."""
    query = {
        "metadata.owner_id": owner_id,
        "metadata.state": {"$in": [RECEIVING, FINISHING]},
        "metadata.expires": {"$gt": now or _now()},
    }
    with _driver_errors(f"counting uploads in {TUS_UPLOADS}"):
        return _database()[f"{TUS_UPLOADS}.files"].count_documents(query)


def _free_or_stale_lock(now: datetime.datetime) -> dict:
    return {"$or": [{"metadata.lock": None}, {"metadata.lock_until": {"$lt": now}}]}


def _partial_take(stored_id: ObjectId, *, offset: int, lease_seconds: int) -> tuple[str, bool]:
    """Hold the upload for one writer at `offset` (compare-and-set in MongoDB): (its lock token, whether
    the writer before it died holding the lock, so may have left chunks past the offset).

    A writer that died leaves its lock to lapse after lease_seconds; a living one renews it as it writes."""
    token = ObjectId().binary.hex()
    now = _now()
    files = _database()[f"{TUS_UPLOADS}.files"]
    before = files.find_one_and_update(
        {
            "_id": stored_id,
            "metadata.state": RECEIVING,
            "metadata.offset": offset,
            "metadata.expires": {"$gt": now},
            **_free_or_stale_lock(now),
        },
        {"$set": {"metadata.lock": token, "metadata.lock_until": now + datetime.timedelta(seconds=lease_seconds)}},
        projection={"metadata.lock": 1},
        return_document=pymongo.ReturnDocument.BEFORE,
    )
    if before is not None:
        return token, before["metadata"].get("lock") is not None
    document = files.find_one({"_id": stored_id}, {"metadata": 1})
    if document is None or _aware(document["metadata"]["expires"]) <= now:
        raise PartialUploadNotFound("No upload in progress has this id (it may have expired); create a new upload.")
    state = document["metadata"]
    if state["state"] != RECEIVING:
        raise PartialOffsetMismatch(
            "This upload has received all its bytes; send none after them.", offset=state["upload_length"]
        )
    if state["offset"] != offset:
        raise PartialOffsetMismatch(
            f"The upload holds {state['offset']} bytes, not {offset}; ask for its offset (HEAD) and resume from there.",
            offset=state["offset"],
        )
    raise PartialUploadBusy("Another request is sending bytes to this upload; wait for it to end, then resume.")


def _partial_renew(
    stored_id: ObjectId, token: str, *, lease_seconds: int, offset: int | None = None, expires=None
) -> dict:
    """Extend the lock (and, given `offset`, commit it with the new expiry and let go): the files document
    as it is now; PartialUploadBusy when the lock was lost."""
    fields: dict[str, Any] = {"metadata.lock_until": _now() + datetime.timedelta(seconds=lease_seconds)}
    if offset is not None:
        fields = {
            "metadata.offset": offset,
            "length": offset,
            "metadata.expires": expires,
            "metadata.lock": None,
            "metadata.lock_until": None,
        }
    renewed = _database()[f"{TUS_UPLOADS}.files"].find_one_and_update(
        {"_id": stored_id, "metadata.lock": token}, {"$set": fields}, return_document=pymongo.ReturnDocument.AFTER
    )
    if renewed is None:
        raise PartialUploadBusy("Another request took over this upload; ask for its offset (HEAD) and resume.")
    return renewed


def partial_append(
    upload_id: str,
    read,
    *,
    offset: int,
    size: int,
    lease_seconds: int,
    expires: datetime.datetime,
    checksum: tuple[str, bytes] | None = None,
) -> PartialUpload:
    """Append up to `size` bytes, taken from read(n) until it returns b"", to the upload at `offset`.

    One writer at a time: another gets PartialUploadBusy, a wrong offset PartialOffsetMismatch. The
    chunks keep GridFS's layout at every moment (the last one partial), so a body cut off mid-way keeps
    what arrived, and a crashed writer leaves at most chunks past the offset, which the next one replaces.
    With `checksum` (hashlib name, expected digest) the bytes are kept only when all arrived and match.
    The expiry moves to `expires`: an upload that is still arriving does not lapse.
    """
    stored_id = _partial_id(upload_id)
    with _driver_errors(f"appending to upload {stored_id}"):
        token, after_a_crash = _partial_take(stored_id, offset=offset, lease_seconds=lease_seconds)
        chunks = _database()[f"{TUS_UPLOADS}.chunks"]
        first_n, kept = divmod(offset, CHUNK_SIZE)
        prefix = b""
        if kept:
            found = chunks.find_one({"files_id": stored_id, "n": first_n}, {"data": 1})
            prefix = bytes(found["data"])[:kept] if found else b""
            if len(prefix) != kept:
                raise gridfs.errors.CorruptGridFile(f"chunk {first_n} of upload {stored_id} is short")
        if after_a_crash:  # what the dead writer stored past the offset goes (the others left none)
            chunks.delete_many({"files_id": stored_id, "n": {"$gt": first_n}})
    hasher = hashlib.new(checksum[0]) if checksum else None
    received = 0
    pending = bytearray(prefix)
    batch: list[dict] = []
    next_n = first_n
    interrupted: BaseException | None = None
    renewed = time.monotonic()

    def flush() -> None:
        nonlocal batch
        if not batch:
            return
        with _driver_errors(f"appending to upload {stored_id}"):
            if batch[0]["n"] == first_n:  # rewrites the partial chunk it started from
                rewritten = {key: value for key, value in batch[0].items() if key != "_id"}  # _id is kept
                chunks.replace_one({"files_id": stored_id, "n": first_n}, rewritten, upsert=True)
                batch = batch[1:]
            if batch:
                chunks.insert_many(batch, ordered=True)
        batch = []

    def add_chunk(data: bytes) -> None:
        nonlocal next_n
        batch.append({"_id": ObjectId(), "files_id": stored_id, "n": next_n, "data": data})
        next_n += 1
        if len(batch) >= WRITE_BATCH_CHUNKS:
            flush()

    try:
        while received < size:
            try:
                data = read(min(CHUNK_SIZE, size - received))
            except (OSError, ValueError) as exc:  # the client went away mid-body
                interrupted = exc
                break
            if not data:
                break
            if time.monotonic() - renewed > lease_seconds / 3:  # held while bytes arrive, however slowly
                with _driver_errors(f"appending to upload {stored_id}"):
                    _partial_renew(stored_id, token, lease_seconds=lease_seconds)
                renewed = time.monotonic()
            received += len(data)
            if hasher:
                hasher.update(data)
            pending += data
            while len(pending) >= CHUNK_SIZE:
                add_chunk(bytes(pending[:CHUNK_SIZE]))
                del pending[:CHUNK_SIZE]
        refused = hasher is not None and (received != size or hasher.digest() != checksum[1])
        if not refused:
            if pending:
                add_chunk(bytes(pending))
            flush()
    except BaseException:
        _partial_restore(stored_id, token, first_n=first_n, prefix=prefix)
        raise
    if refused:
        _partial_restore(stored_id, token, first_n=first_n, prefix=prefix)
        if received != size:
            raise PartialChecksumMismatch("The body ended before all its bytes arrived; send them again.")
        raise PartialChecksumMismatch(
            "The bytes that arrived do not match their Upload-Checksum; they may have been damaged on the way. "
            "Send them again."
        )
    with _driver_errors(f"appending to upload {stored_id}"):
        committed = _partial_renew(
            stored_id, token, lease_seconds=lease_seconds, offset=offset + received, expires=expires
        )
    if interrupted is not None:
        logger.info("upload %s: the body stopped after %d of %d bytes (%s)", stored_id, received, size, interrupted)
    return _partial_from(committed)


def _partial_restore(stored_id: ObjectId, token: str, *, first_n: int, prefix: bytes) -> None:
    """Put the chunks back as they were at the offset and let go of the lock, unless another writer took
    it over meanwhile (its chunks are its own); quietly, since the error that led here matters more (the
    next writer replaces what stays past the offset)."""
    try:
        database = _database()
        if not database[f"{TUS_UPLOADS}.files"].count_documents({"_id": stored_id, "metadata.lock": token}, limit=1):
            return
        database[f"{TUS_UPLOADS}.chunks"].delete_many({"files_id": stored_id, "n": {"$gt": first_n}})
        if prefix:
            database[f"{TUS_UPLOADS}.chunks"].update_one(
                {"files_id": stored_id, "n": first_n}, {"$set": {"data": prefix}}
            )
        else:
            database[f"{TUS_UPLOADS}.chunks"].delete_many({"files_id": stored_id, "n": first_n})
        database[f"{TUS_UPLOADS}.files"].update_one(
            {"_id": stored_id, "metadata.lock": token}, {"$set": {"metadata.lock": None, "metadata.lock_until": None}}
        )
    except PyMongoError as exc:
        logger.warning("could not restore upload %s after a refused PATCH: %s", stored_id, exc)


def partial_finish_begin(upload_id: str, *, lease_seconds: int) -> PartialUpload | None:
    """Claim a complete upload for turning into a job (one process does it); None when it is not
    complete, or another process has it."""
    upload = partial_get(upload_id)
    if upload.offset != upload.length:
        return None
    stored_id, now = _partial_id(upload_id), _now()
    with _driver_errors(f"finishing upload {stored_id}"):
        document = _database()[f"{TUS_UPLOADS}.files"].find_one_and_update(
            {
                "_id": stored_id,
                "metadata.state": {"$in": [RECEIVING, FINISHING]},
                "metadata.offset": upload.length,
                **_free_or_stale_lock(now),
            },
            {
                "$set": {
                    "metadata.state": FINISHING,
                    "metadata.lock": ObjectId().binary.hex(),
                    "metadata.lock_until": now + datetime.timedelta(seconds=lease_seconds),
                }
            },
            return_document=pymongo.ReturnDocument.AFTER,
        )
    return _partial_from(document) if document else None


def partial_copy_to_path(upload_id: str, path: str | os.PathLike, *, hash_name: str = "sha256") -> str:
    """Assemble the received bytes into a local file; their digest (hex) by `hash_name`."""
    digest = hashlib.new(hash_name)
    partial = f"{os.fspath(path)}.part"
    try:
        with open(partial, "wb") as target:
            for chunk in iter_range(TUS_UPLOADS, upload_id, chunk_size=CHUNK_SIZE):
                digest.update(chunk)
                target.write(chunk)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return digest.hexdigest()


def partial_finish_release(upload_id: str) -> None:
    """Give a claimed upload back (its job could not be made now): a later empty PATCH finishes it."""
    stored_id = _partial_id(upload_id)
    with _driver_errors(f"releasing upload {stored_id}"):
        _database()[f"{TUS_UPLOADS}.files"].update_one(
            {"_id": stored_id, "metadata.state": FINISHING},
            {"$set": {"metadata.state": RECEIVING, "metadata.lock": None, "metadata.lock_until": None}},
        )


def partial_finished(upload_id: str, *, job_id: str) -> None:
    """The upload became job `job_id`: its bytes go, its record stays (naming the job) until it expires."""
    stored_id = _partial_id(upload_id)
    with _driver_errors(f"finishing upload {stored_id}"):
        database = _database()
        database[f"{TUS_UPLOADS}.files"].update_one(
            {"_id": stored_id},
            {"$set": {"metadata.state": FINISHED, "metadata.job_id": job_id, "metadata.lock": None, "length": 0}},
        )
        database[f"{TUS_UPLOADS}.chunks"].delete_many({"files_id": stored_id})


def partial_delete(upload_id: str) -> bool:
    """Remove the upload and its bytes (termination, or a refusal once it arrived)."""
    try:
        stored_id = _partial_id(upload_id)
    except PartialUploadNotFound:
        return False
    with _driver_errors(f"deleting upload {stored_id}"):
        return _delete_by_id(TUS_UPLOADS, stored_id)


def partial_uploads_expire(*, now: datetime.datetime | None = None) -> int:
    """Remove every upload past its expiry that no request is writing to right now: its record and chunks."""
    now = now or _now()
    query = {"metadata.expires": {"$lte": now}, **_free_or_stale_lock(now)}
    removed = 0
    with _driver_errors(f"expiring uploads in {TUS_UPLOADS}"):
        files = _database()[f"{TUS_UPLOADS}.files"]
        for document in files.find(query, {"_id": 1}):
            # Conditional, so an upload that a PATCH renewed meanwhile stays.
            if files.delete_one({"_id": document["_id"], **query}).deleted_count:
                _database()[f"{TUS_UPLOADS}.chunks"].delete_many({"files_id": document["_id"]})
                removed += 1
    return removed


def partial_chunk_count(upload_id: str) -> int:
    """How many chunks the upload holds in GridFS (what a test checks after expiry or a refusal)."""
    stored_id = _partial_id(upload_id)
    with _driver_errors(f"counting chunks of upload {stored_id}"):
        return _database()[f"{TUS_UPLOADS}.chunks"].count_documents({"files_id": stored_id})
