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
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser, get_encoding

# Multipart framing around the file: a request past this much over the limit cannot fit.
MULTIPART_OVERHEAD = 64 * 1024


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
    # Called as a file part begins, before any of its bytes are read; may raise to refuse the request
    # (set by FieldsFirstMultiPartParser).
    before_file = None

    def new_file(self, *args, **kwargs):
        if self.before_file is not None:
            self.before_file()
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


class _FieldsCheckingDjangoParser(DjangoMultiPartParser):
    """Django's multipart parser, handing `check_fields` the form fields parsed so far when a file part
    begins, before its bytes are read: an upload whose option fields come before its file is refused
    from them without spooling the file (it may be GBs; the client sees the answer at once).

    This relies on Django's parse order: _parse() adds each field to self._post as it arrives, and
    calls each upload handler's new_file() before it reads the file part's first chunk."""

    def __init__(self, *args, check_fields, **kwargs):
        super().__init__(*args, **kwargs)
        self._check_fields = check_fields
        for handler in self._upload_handlers:
            if isinstance(handler, SizeLimitedTemporaryFileUploadHandler):
                handler.before_file = self._check_fields_so_far

    def _check_fields_so_far(self) -> None:
        self._check_fields(self._post)


class FieldsFirstMultiPartParser(MultiPartParser):
    """DRF's multipart parser through _FieldsCheckingDjangoParser, when the view has a
    `check_fields_before_file(fields)` that raises to refuse the request."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        check = getattr(parser_context.get("view"), "check_fields_before_file", None)
        if check is None:
            return super().parse(stream, media_type, parser_context)
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = get_encoding(parser_context)
        try:
            parser = _FieldsCheckingDjangoParser(meta, stream, request.upload_handlers, encoding, check_fields=check)
            data, files = parser.parse()
            return DataAndFiles(data, files)
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
