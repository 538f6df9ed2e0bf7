"""Uploads are spooled to a temp file (never held in memory) and cut off at MAX_UPLOAD_SIZE.

While the body arrives, each piece is also written into GridFS, so storing the video overlaps
receiving it instead of following it (a 1 GiB upload took twice as long as a GridFS write of the
same bytes). uploads.services.job_create probes the spooled copy and then either completes the
stored file or removes it. If the store fails mid-upload, spooling goes on and job_create stores the
file afterwards as before (and answers 503 if the store is still down).
"""

import logging

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from rest_framework.exceptions import APIException

from uploads import storage

logger = logging.getLogger(__name__)


class UploadTooLarge(APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self):
        from uploads.services import too_large_sentence

        super().__init__(too_large_sentence())


class StoringUploadedFile(TemporaryUploadedFile):
    """The spooled upload, plus the GridFS file being written alongside it (None once given up)."""

    stored_writer: storage.StoredFileWriter | None = None

    def discard_stored(self) -> None:
        writer, self.stored_writer = self.stored_writer, None
        if writer is not None and not writer.closed:
            writer.abort()

    def close(self):
        self.discard_stored()  # never completed: the request ended without a job
        return super().close()


class SizeLimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Stops reading as soon as a file passes the limit, even when the client sent no Content-Length."""

    def new_file(self, *args, **kwargs):
        self.received = 0
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = StoringUploadedFile(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)
        try:
            self.file.stored_writer = storage.open_writer(
                storage.VIDEOS,
                filename=self.file_name or "upload",
                content_type=self.content_type or "application/octet-stream",
            )
        except storage.StorageError:
            logger.warning("the file store is unavailable; storing the upload after it has arrived")

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_SIZE:
            self.file.close()  # the temp file is deleted on close, the stored part removed
            raise UploadTooLarge()
        if self.file.stored_writer is not None:
            try:
                self.file.stored_writer.write(raw_data)
            except storage.StorageError:
                logger.warning("the file store failed mid-upload; storing the upload after it has arrived")
                self.file.discard_stored()
        return super().receive_data_chunk(raw_data, start)

    def upload_interrupted(self):
        if isinstance(getattr(self, "file", None), StoringUploadedFile):
            self.file.discard_stored()
