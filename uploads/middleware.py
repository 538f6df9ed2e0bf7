from uploads.upload_handlers import SizeLimitedTemporaryFileUploadHandler


class PartialUploadCleanupMiddleware:
    """Removes what a body cut off mid-upload left spooled on disk.

    When the client goes away, reading the body raises inside Django's multipart parser, which then
    closes nothing: the part already received would stay in FILE_UPLOAD_TEMP_DIR until the process
    ends. Whatever read the body (a view, or the session's CSRF check), the request ends here.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            for handler in getattr(request, "_upload_handlers", ()):
                if isinstance(handler, SizeLimitedTemporaryFileUploadHandler) and handler.unfinished:
                    handler.upload_interrupted()
