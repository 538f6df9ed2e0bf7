import threading

from django.conf import settings
from django.http import JsonResponse

from uploads.upload_handlers import MULTIPART_OVERHEAD, SizeLimitedTemporaryFileUploadHandler


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


# Seconds a client refused for capacity is told to wait before it sends the file again: an upload in
# progress ends within minutes, and a refused one costs only its headers.
UPLOAD_CAPACITY_RETRY_AFTER_SECONDS = 10
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# A resumable (tus) upload's bytes: a PATCH, or the POST that creates it with its first bytes.
TUS_CHUNK_CONTENT_TYPE = "application/offset+octet-stream"
_UPLOAD_CONTENT_TYPES = {"multipart/form-data", TUS_CHUNK_CONTENT_TYPE}
# Bodies this small are not counted: two of Django's in-memory upload sizes.
SMALL_BODY_BYTES = 4 * 1024**2


class ConcurrentUploadLimitMiddleware:
    """At most MAX_CONCURRENT_UPLOADS multipart bodies (or tus chunks, see _chunk) in this process at once, reserving twice their
    Content-Length out of UPLOAD_SPOOL_BYTES; one more answers 503 with Retry-After before a byte of its
    body is read.

    Every multipart file part is spooled whole to FILE_UPLOAD_TEMP_DIR and its audio extracted beside
    it, so what a pod takes at once must fit its /tmp (k8s/base/web.yaml sizes it from the budget); past
    that the kubelet evicts the pod and every upload in it is lost. The count keeps threads free for
    pages, polls and downloads while uploads hold theirs for minutes.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.lock = threading.Lock()
        self.uploads = 0
        self.reserved = 0

    def __call__(self, request):
        if request.method not in _BODY_METHODS or request.content_type not in _UPLOAD_CONTENT_TYPES:
            return self.get_response(request)
        if request.content_type == TUS_CHUNK_CONTENT_TYPE:
            return self._chunk(request)
        # A missing or malformed length is answered by the upload view (400), which reads no body either.
        try:
            declared = max(0, int(request.META.get("CONTENT_LENGTH") or 0))
        except ValueError:
            declared = 0
        if 0 < declared <= SMALL_BODY_BYTES:
            # A preflight check's head and tail, a short clip: read at once, it holds no thread for long.
            return self.get_response(request)
        # Body and extracted audio; a body past the size limit is refused unread, so it needs no room.
        needed = 2 * min(declared, settings.MAX_UPLOAD_SIZE + MULTIPART_OVERHEAD)
        with self.lock:
            # Alone, an upload is always taken: the budget is meant to hold one of MAX_UPLOAD_SIZE.
            room = self.reserved + needed <= settings.UPLOAD_SPOOL_BYTES or self.uploads == 0
            if self.uploads >= settings.MAX_CONCURRENT_UPLOADS or not room:
                return _at_capacity()
            self.uploads += 1
            self.reserved += needed
        try:
            return self.get_response(request)
        finally:
            with self.lock:
                self.uploads -= 1
                self.reserved -= needed

    def _chunk(self, request):
        """A tus chunk holds a thread while it arrives, as a multipart upload does, so it takes a slot of
        MAX_CONCURRENT_UPLOADS (tus clients retry a 503 after Retry-After, then resume at the offset). It
        reserves none of UPLOAD_SPOOL_BYTES: its bytes go straight to GridFS, never to the spool. Only the
        request with an upload's last bytes assembles the file there, as the multipart upload of that file
        would have spooled it."""
        with self.lock:
            if self.uploads >= settings.MAX_CONCURRENT_UPLOADS:
                return _at_capacity()
            self.uploads += 1
        try:
            return self.get_response(request)
        finally:
            with self.lock:
                self.uploads -= 1


def _at_capacity() -> JsonResponse:
    response = JsonResponse(
        {
            "detail": "This server is receiving as many uploads as it can hold right now; "
            f"send the file again in {UPLOAD_CAPACITY_RETRY_AFTER_SECONDS} seconds.",
            "code": "uploads_at_capacity",
        },
        status=503,
    )
    response["Retry-After"] = str(UPLOAD_CAPACITY_RETRY_AFTER_SECONDS)
    # Answered before CommonMiddleware, which would set it: without it the answer goes out chunked.
    response["Content-Length"] = str(len(response.content))
    return response
