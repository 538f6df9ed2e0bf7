"""Uploads are spooled to a temp file (never held in memory), hashed as they arrive, and cut off at
MAX_UPLOAD_SIZE.

Nothing reaches GridFS while the body arrives: uploads.services.intake.job_create probes the spooled file
and stores only what a conversion needs (the audio, stream-copied, and the cover frame), a few MB
where the video may be GBs. The SHA-256 (the dedup key) is computed on the way in, so it costs no
second read of the file.
"""

import hashlib
import queue
import threading
import time

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework.exceptions import APIException


class UploadTooLarge(APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self):
        from uploads.services.intake import too_large_sentence

        super().__init__(too_large_sentence())


class SizeLimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Stops reading as soon as a file passes the limit, even when the client sent no Content-Length.

    The finished file carries `content_sha256`, the hex SHA-256 of its bytes, and `receive_seconds` and
    `hash_seconds`: how long its body took to arrive and be spooled, and the part of that spent hashing."""

    # Django reads the body in pieces of this size (64 KiB by default). Read from gunicorn's socket in
    # 1 MiB pieces, a 54 MiB upload was received in 0.05 s instead of 0.26 s (make bench, default path).
    chunk_size = 1024 * 1024
    unfinished = False  # a file is being received (uploads.middleware removes it if the body is cut off)

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.unfinished = True
        self.received = 0
        self.started = time.perf_counter()
        self.hashing = _Hashing()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_SIZE:
            self.file.close()  # the temp file is deleted on close
            self.unfinished = False
            self.hashing.finish()
            raise UploadTooLarge()
        self.hashing.feed(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        self.unfinished = False
        received = time.perf_counter()
        uploaded.content_sha256 = self.hashing.finish()
        # hash: what hashing added after the last byte arrived (it overlaps the receiving otherwise).
        uploaded.hash_seconds = time.perf_counter() - received
        uploaded.receive_seconds = received - self.started
        return uploaded

    def upload_interrupted(self):
        if getattr(self, "hashing", None) is not None:
            self.hashing.finish()
        super().upload_interrupted()


class _Hashing:
    """SHA-256 of the body computed on a thread of its own while the request's thread parses the body and
    writes it to disk: hashlib releases the GIL on large buffers, so on two cores the hash costs the
    upload almost nothing (it was 0.15 s per 256 MiB on the request's thread)."""

    def __init__(self):
        self._digest = hashlib.sha256()
        # Bounded (8 pieces of at most chunk_size), so a hash that falls behind slows the upload, not memory.
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="upload-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._digest.update(chunk)

    def feed(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def finish(self) -> str:
        """Wait for the last chunk; the hex digest."""
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()
        return self._digest.hexdigest()
