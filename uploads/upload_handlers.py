"""Uploads are spooled to a temp file (never held in memory), hashed as they arrive, and cut off at
MAX_UPLOAD_SIZE.

Nothing reaches GridFS while the body arrives: uploads.services.job_create probes the spooled file
and stores only what a conversion needs (the audio, stream-copied, and the cover frame), a few MB
where the video may be GBs. The SHA-256 (the dedup key) is computed on the way in, so it costs no
second read of the file.
"""

import hashlib
import time

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from rest_framework.exceptions import APIException


class UploadTooLarge(APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self):
        from uploads.services import too_large_sentence

        super().__init__(too_large_sentence())


class SizeLimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Stops reading as soon as a file passes the limit, even when the client sent no Content-Length.

    The finished file carries `content_sha256`, the hex SHA-256 of its bytes, and `receive_seconds` and
    `hash_seconds`: how long its body took to arrive and be spooled, and the part of that spent hashing."""

    unfinished = False  # a file is being received (uploads.middleware removes it if the body is cut off)

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.unfinished = True
        self.received = 0
        self.digest = hashlib.sha256()
        self.started = time.perf_counter()
        self.hash_seconds = 0.0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_SIZE:
            self.file.close()  # the temp file is deleted on close
            self.unfinished = False
            raise UploadTooLarge()
        hashing_since = time.perf_counter()
        self.digest.update(raw_data)
        self.hash_seconds += time.perf_counter() - hashing_since
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size):
        uploaded = super().file_complete(file_size)
        self.unfinished = False
        uploaded.content_sha256 = self.digest.hexdigest()
        uploaded.hash_seconds = self.hash_seconds
        uploaded.receive_seconds = time.perf_counter() - self.started - self.hash_seconds
        return uploaded
