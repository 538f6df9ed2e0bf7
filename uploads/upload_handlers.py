"""Uploads are spooled to a temp file (never held in memory) and cut off at MAX_UPLOAD_SIZE."""

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
    """Stops reading as soon as a file passes the limit, even when the client sent no Content-Length."""

    def new_file(self, *args, **kwargs):
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.MAX_UPLOAD_SIZE:
            self.file.close()  # the temp file is deleted on close
            raise UploadTooLarge()
        return super().receive_data_chunk(raw_data, start)
