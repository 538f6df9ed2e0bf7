"""Many MP3s as one ZIP, streamed out of GridFS as it is read (GET /api/jobs/archive).

The entries are stored, not deflated: MP3s do not compress, and a stored ZIP's length is known before the
first byte (zipstream-ng adds them up), so the response has a Content-Length and a client a progress bar.
Each entry is read from GridFS a few chunks at a time only when the ZIP reaches it, so a process holds
about one read batch however many MP3s and bytes the archive has; ZIP64 records appear when it passes 4 GiB.
"""

import logging

from django.http import StreamingHttpResponse
from zipstream import ZIP_STORED, ZipStream

from core import storage
from uploads.downloads import content_disposition
from uploads.models import Job

logger = logging.getLogger(__name__)

# What one request may ask for: a selection, not an account's export.
MAX_ARCHIVE_JOBS = 500
ARCHIVE_FILENAME = "videomp3-mp3s.zip"


class _StoredMp3:
    """An MP3 in GridFS as an iterable of bytes, opened only when iterated (when the ZIP reaches it)."""

    def __init__(self, file_id: str):
        self.file_id = file_id

    def __iter__(self):
        return storage.iter_range(storage.MP3S, self.file_id, chunk_size=storage.CHUNK_SIZE)


def unique_names(names: list[str]) -> list[str]:
    """The names in order, each made unique by a " (2)", " (3)"… before its extension. Compared without
    case, so the archive also unpacks whole on case-insensitive file systems (macOS, Windows)."""
    taken: set[str] = set()
    unique = []
    for name in names:
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        candidate, number = name, 1
        while candidate.casefold() in taken:
            number += 1
            candidate = f"{stem} ({number}){dot}{extension}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def _entry_name(job: Job) -> str:
    # mp3_filename is display text: the upload's name without path parts or control characters. A name
    # with nothing left but dots (".mp3") would unpack as a hidden file.
    name = job.mp3_filename.replace("\\", "_").replace("/", "_").strip()
    return name if name.strip(".") and name != ".mp3" else "audio.mp3"


def archive_response(jobs: list[Job], lengths: dict[str, int]) -> StreamingHttpResponse:
    """The ZIP of these done jobs' MP3s, in this order; lengths: each MP3's stored length by file id."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    for job, name in zip(jobs, unique_names([_entry_name(job) for job in jobs]), strict=True):
        archive.add(_StoredMp3(job.mp3_file_id), name, size=lengths[job.mp3_file_id])
    response = StreamingHttpResponse(_streamed(archive, len(jobs)), content_type="application/zip")
    response["Content-Length"] = str(len(archive))
    response["Content-Disposition"] = content_disposition(ARCHIVE_FILENAME)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


def _streamed(archive: ZipStream, count: int):
    try:
        yield from archive
    except storage.StorageError as exc:
        # The headers are gone: the connection is cut short of its Content-Length, so the client sees a
        # broken download rather than a ZIP that looks whole and lacks files.
        logger.warning("the archive of %d MP3s stopped: %s", count, exc)
        raise
