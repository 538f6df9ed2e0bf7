import threading

from django.conf import settings
from django.http import JsonResponse

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


# Seconds a client refused for capacity is told to wait: an upload in progress takes minutes.
UPLOAD_CAPACITY_RETRY_AFTER_SECONDS = 60
_BODY_METHODS = {"POST", "PUT", "PATCH"}


class ConcurrentUploadLimitMiddleware:
    """At most MAX_CONCURRENT_UPLOADS multipart bodies in this process at once; one more answers 503
    with Retry-After before a byte of its body is read.

    Every multipart file part is spooled whole to FILE_UPLOAD_TEMP_DIR and its audio extracted beside
    it, so the uploads a pod takes at once must fit its /tmp (k8s/base/web.yaml sizes it from this
    cap); past that the kubelet evicts the pod and every upload in it is lost. The cap also keeps
    threads free for pages, polls and downloads while uploads hold theirs for minutes.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.slots = threading.BoundedSemaphore(settings.MAX_CONCURRENT_UPLOADS)

    def __call__(self, request):
        is_upload = request.method in _BODY_METHODS and request.content_type == "multipart/form-data"
        if not is_upload:
            return self.get_response(request)
        if not self.slots.acquire(blocking=False):
            return _at_capacity()
        try:
            return self.get_response(request)
        finally:
            self.slots.release()


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
