"""Streaming an MP3 out of GridFS with HTTP Range support (the browser's <audio> player seeks with it)."""

import re
from urllib.parse import quote

from django.http import HttpResponse, StreamingHttpResponse

from core import storage
from uploads.models import Job

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# A position of more digits than this is past the end of any stored file (and int() refuses thousands).
_MAX_POSITION_DIGITS = 18


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 10**_MAX_POSITION_DIGITS


def parse_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive for one satisfiable range; None to serve the whole file; False if unsatisfiable."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None  # absent, multiple ranges or another unit: a full response is always allowed
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        length = _position(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return False
    return start, end


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name in filename*."""
    ascii_name = (
        "".join(char if 32 <= ord(char) < 127 and char not in '"\\;' else "_" for char in filename) or "audio.mp3"
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def mp3_response(request, job: Job) -> HttpResponse:
    stored = storage.open_file(storage.MP3S, job.mp3_file_id)
    size = stored.length
    stored.close()
    wanted = parse_range(request.headers.get("Range", ""), size)
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, end = wanted if wanted else (0, size - 1)
    body = storage.iter_range(storage.MP3S, job.mp3_file_id, start, end) if size else iter(())
    response = StreamingHttpResponse(body, status=206 if wanted else 200, content_type="audio/mpeg")
    response["Content-Length"] = str(end - start + 1 if size else 0)
    response["Accept-Ranges"] = "bytes"
    if wanted:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Disposition"] = content_disposition(job.mp3_filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
