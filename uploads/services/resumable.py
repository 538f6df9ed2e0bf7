"""Resumable (tus 1.0) uploads: created after the same checks as a plain upload, received PATCH by PATCH
into GridFS (core.storage keeps the bytes and the offset where every web replica sees them), and once
complete handed to intake.job_create like any upload: probe, refusals, audio-first extraction, dedup, queue."""

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from core import storage
from uploads import options as job_options
from uploads import selectors
from uploads.models import Job
from uploads.services import intake

logger = logging.getLogger(__name__)

# A writer renews its hold on an upload at every 4 MiB it stores; one that died lets go after this long.
WRITE_LEASE_SECONDS = 60
# Turning a complete upload into a job: the probe and extraction, within ffmpeg's own time limits.
FINISH_LEASE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Finished:
    """What the last bytes of an upload led to: its job, or the refusal intake gave it (the upload is gone)."""

    job: Job | None = None
    refusal: intake.UploadRejected | None = None


def _expiry():
    return timezone.now() + timedelta(seconds=settings.TUS_UPLOAD_EXPIRY_SECONDS)


def resumable_upload_create(
    *, owner, length: int, filename: str, options: job_options.JobOptions, content_sha256: str | None = None
) -> tuple[storage.PartialUpload, Job | None]:
    """A new upload of `length` bytes, refused (UploadRejected) as a plain upload's headers would be before
    a byte is stored. With a declared SHA-256 that dedup serves, no byte is needed at all: the upload is
    born finished, naming the reused job (returned beside it)."""
    if content_sha256:
        job = intake.job_create_from_digest(owner=owner, content_sha256=content_sha256, options=options)
        if job is not None:
            upload = storage.partial_create(
                owner_id=owner.pk, length=length, expires=_expiry(), info={"filename": filename}
            )
            storage.partial_finished(upload.upload_id, job_id=str(job.id))
            return storage.partial_get(upload.upload_id), job
    if length > settings.MAX_UPLOAD_SIZE:
        raise intake.UploadRejected(413, intake.too_large_sentence(), "too_large")
    if length == 0:
        raise intake.UploadRejected(422, "The file is empty; choose a video or audio file.", "empty_file")
    # An upload in progress will be a queued job: it counts as one, until it expires.
    pending = storage.partial_count_active(owner_id=owner.pk)
    intake.quota_check(owner=owner, incoming=1, pending_uploads=pending)
    info = {"filename": filename, "options": options.canonical()}
    return storage.partial_create(owner_id=owner.pk, length=length, expires=_expiry(), info=info), None


def resumable_upload_get(*, owner, upload_id: str) -> storage.PartialUpload:
    """The owner's unexpired upload; PartialUploadNotFound for another user's, as for an unknown one."""
    upload = storage.partial_get(upload_id)
    if upload.owner_id != owner.pk:
        raise storage.PartialUploadNotFound(
            "No upload in progress has this id (it may have expired); create a new upload."
        )
    return upload


def resumable_upload_append(
    *, upload: storage.PartialUpload, read, offset: int, size: int, checksum: tuple[str, bytes] | None
) -> storage.PartialUpload:
    return storage.partial_append(
        upload.upload_id,
        read,
        offset=offset,
        size=size,
        lease_seconds=WRITE_LEASE_SECONDS,
        expires=_expiry(),
        checksum=checksum,
    )


class _AssembledUpload(UploadedFile):
    """The complete upload as a local file, shaped as Django's spooled upload so intake takes it unchanged."""

    def __init__(self, path: str, *, name: str, size: int, content_sha256: str):
        super().__init__(open(path, "rb"), name=name, content_type="application/octet-stream", size=size)
        self._path = path
        self.content_sha256 = content_sha256

    def temporary_file_path(self) -> str:
        return self._path


def resumable_upload_finish(*, owner, upload: storage.PartialUpload) -> Finished | None:
    """Turn a complete upload into a job through intake.job_create; None when another request is doing it.

    The bytes are assembled into FILE_UPLOAD_TEMP_DIR, as a plain upload is spooled there. A refusal
    removes the upload (the file will not be accepted as it is); a store failure keeps it, so the client's
    retry (an empty PATCH at its end) finishes it later."""
    claimed = storage.partial_finish_begin(upload.upload_id, lease_seconds=FINISH_LEASE_SECONDS)
    if claimed is None:
        return None
    options = job_options.JobOptions.from_stored(claimed.info.get("options"))
    descriptor, path = tempfile.mkstemp(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".upload")
    os.close(descriptor)
    try:
        started = time.perf_counter()
        sha256 = storage.partial_copy_to_path(claimed.upload_id, path)
        assembled = _AssembledUpload(
            path, name=claimed.info.get("filename") or "upload", size=claimed.length, content_sha256=sha256
        )
        # Assembling is this upload's way onto the local disk: the `receive` of its `upload timings` line.
        assembled.receive_seconds = time.perf_counter() - started
        try:
            job = intake.job_create(owner=owner, upload=assembled, options=options)
        finally:
            assembled.close()
    except intake.QuotaExceeded as exc:
        # A limit that lifts with time (a job finishes, files expire): the bytes stay for the retry.
        storage.partial_finish_release(claimed.upload_id)
        return Finished(refusal=exc)
    except intake.UploadRejected as exc:  # the file will not be accepted as it is
        storage.partial_delete(claimed.upload_id)
        return Finished(refusal=exc)
    except BaseException:
        storage.partial_finish_release(claimed.upload_id)
        raise
    finally:
        os.unlink(path)
    storage.partial_finished(claimed.upload_id, job_id=str(job.id))
    logger.info("resumable upload %s became job %s", claimed.upload_id, job.id)
    return Finished(job=job)


def job_of_upload(*, owner, job_id: str) -> Job | None:
    return selectors.job_get_for_user(user=owner, job_id=job_id)


def resumable_upload_delete(*, upload: storage.PartialUpload) -> None:
    storage.partial_delete(upload.upload_id)


def resumable_uploads_expire() -> int:
    """Remove the uploads past their expiry (cleanup_storage); one being written to is left to its writer."""
    return storage.partial_uploads_expire()
