"""GridFS storage of uploaded videos and produced MP3s: the only module that imports pymongo.

Every read and write streams in chunks, so no call holds a whole file in memory. Every
driver error becomes StorageError with a sentence, so callers never see pymongo types.
"""

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import gridfs
import pymongo
from bson import ObjectId
from django.conf import settings
from pymongo.errors import PyMongoError

logger = logging.getLogger(__name__)

VIDEOS = "videos"
MP3S = "mp3s"

# GridFS's default chunk size; reads and writes move this much at a time.
CHUNK_SIZE = 255 * 1024
UNREACHABLE = "The file store (MongoDB) is unreachable; try again in a minute."
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


class StorageError(Exception):
    """The file store failed or is unreachable; str() is a sentence for the user."""


class StoredFileNotFound(StorageError):
    """No stored file has this id."""


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    size: int
    sha256: str


_client: pymongo.MongoClient | None = None
_client_lock = threading.Lock()


def _database():
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                uri = settings.MONGODB_URI
                if not uri:
                    from videomp3 import embedded

                    uri = embedded.mongodb_uri()
                _client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, appname="videomp3")
    return _client[settings.MONGODB_DB]


def reset_client() -> None:
    """Forget the client (tests switch databases; a forked process must not share sockets)."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
        _client = None


def _bucket(name: str) -> gridfs.GridFSBucket:
    return gridfs.GridFSBucket(_database(), bucket_name=name, chunk_size_bytes=CHUNK_SIZE)


def _stored_id(file_id: str):
    """Videos get ObjectIds (as the original system's fids); MP3s get ids derived from their job."""
    return ObjectId(file_id) if _OBJECT_ID.match(file_id or "") else file_id


def ping() -> None:
    try:
        _database().command("ping")
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc


def drop_database() -> None:
    try:
        _database().client.drop_database(settings.MONGODB_DB)
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc


def save_stream(
    bucket: str,
    stream: BinaryIO,
    *,
    filename: str,
    content_type: str,
    file_id: str | None = None,
    metadata: dict | None = None,
) -> StoredFile:
    """Store a stream chunk by chunk; an explicit file_id replaces the file that had it.

    A failure mid-way aborts the upload, which removes the chunks already written.
    """
    digest = hashlib.sha256()
    size = 0
    try:
        target = _bucket(bucket)
        stored_id = _stored_id(file_id) if file_id else ObjectId()
        if file_id:
            _delete_by_id(bucket, stored_id)
        grid_in = target.open_upload_stream_with_id(
            stored_id, filename, metadata={**(metadata or {}), "contentType": content_type}
        )
        try:
            while chunk := stream.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
                grid_in.write(chunk)
        except BaseException:
            grid_in.abort()
            raise
        grid_in.close()
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc
    return StoredFile(file_id=str(stored_id), size=size, sha256=digest.hexdigest())


def save_path(bucket: str, path: str | os.PathLike, **kwargs) -> StoredFile:
    with open(path, "rb") as source:
        return save_stream(bucket, source, **kwargs)


def open_file(bucket: str, file_id: str) -> gridfs.GridOut:
    """A readable, seekable file with .length; StoredFileNotFound for an unknown or malformed id."""
    try:
        return _bucket(bucket).open_download_stream(_stored_id(file_id))
    except gridfs.errors.NoFile:
        raise StoredFileNotFound("The file is no longer stored.") from None
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc


def iter_range(bucket: str, file_id: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Bytes start..end (inclusive) in chunks, for HTTP Range responses."""
    grid_out = open_file(bucket, file_id)
    try:
        last = grid_out.length - 1 if end is None else min(end, grid_out.length - 1)
        grid_out.seek(start)
        remaining = last - start + 1
        while remaining > 0:
            chunk = grid_out.read(min(chunk_size, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc
    finally:
        grid_out.close()


def copy_to_path(bucket: str, file_id: str, path: str | os.PathLike) -> int:
    """Stream a stored file to local disk; the file appears whole or not at all."""
    partial = f"{os.fspath(path)}.part"
    size = 0
    try:
        with open(partial, "wb") as target:
            for chunk in iter_range(bucket, file_id):
                target.write(chunk)
                size += len(chunk)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return size


def _delete_by_id(bucket: str, stored_id) -> bool:
    database = _database()
    removed = database[f"{bucket}.files"].delete_one({"_id": stored_id}).deleted_count
    # Chunks go too even without a files document: an interrupted write leaves only chunks.
    database[f"{bucket}.chunks"].delete_many({"files_id": stored_id})
    return bool(removed)


def delete(bucket: str, file_id: str) -> bool:
    """Remove a file and its chunks; False when there was none."""
    try:
        return _delete_by_id(bucket, _stored_id(file_id))
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc


def file_exists(bucket: str, file_id: str) -> bool:
    try:
        return _database()[f"{bucket}.files"].count_documents({"_id": _stored_id(file_id)}, limit=1) > 0
    except PyMongoError as exc:
        raise StorageError(UNREACHABLE) from exc
