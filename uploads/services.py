"""Writes to jobs. Every state change is a conditional update, so a duplicated message or a
second worker can never move a job backwards or finish it twice."""

import hashlib
import logging
import shutil
import tempfile
import unicodedata
import uuid
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.utils import timezone

from accounts.services import user_lock
from conversion import ffmpeg
from conversion import options as conversion_options
from uploads import selectors, storage
from uploads.models import Job
from videomp3 import broker, workdirs
from videomp3.backoff import retry_delay
from videomp3.timing import PhaseTimer

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 200


class UploadRejected(Exception):
    """The upload is refused; `status` is the HTTP answer and str() the sentence (`errors`: per field)."""

    def __init__(self, status: int, sentence: str, code: str, errors: dict[str, list[str]] | None = None):
        super().__init__(sentence)
        self.status = status
        self.code = code
        self.errors = errors


def options_rejected(exc: conversion_options.OptionsInvalid) -> UploadRejected:
    return UploadRejected(400, f"Some output options are not valid; {exc}", "invalid_options", errors=exc.errors)


class QuotaExceeded(UploadRejected):
    """A per-user limit is reached (HTTP 429); retry_after says in how many seconds trying again may work."""

    def __init__(self, sentence: str, code: str, *, retry_after: int):
        super().__init__(429, sentence, code)
        self.retry_after = retry_after


class JobStateConflict(Exception):
    """The job's state does not allow this action (HTTP 409)."""


# Where each file a job names is stored. Dedup lets jobs share files: a file goes with the last job naming it.
JOB_FILE_FIELDS = (
    (storage.VIDEOS, "video_file_id"),
    (storage.SOURCES, "source_file_id"),
    (storage.SOURCES, "cover_file_id"),
    (storage.MP3S, "mp3_file_id"),
)

# A queued job usually finishes within minutes; a client refused for too many queued jobs waits this long.
QUEUED_QUOTA_RETRY_AFTER_SECONDS = 60


def _human_bytes(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def _queued_quota_check(*, owner) -> None:
    limit = settings.QUOTA_QUEUED_JOBS_PER_USER
    if limit > 0 and selectors.job_count_in_progress(user=owner) >= limit:
        raise QuotaExceeded(
            f"You already have {limit} jobs waiting or converting, this server's limit; "
            "wait until one of them finishes and try again.",
            "too_many_queued_jobs",
            retry_after=QUEUED_QUOTA_RETRY_AFTER_SECONDS,
        )


def _bytes_quota_check(*, owner, incoming: int) -> None:
    limit = settings.QUOTA_BYTES_PER_USER
    if limit <= 0:
        return
    stored = selectors.user_stored_bytes(user=owner)
    if stored + incoming <= limit:
        return
    next_expiry = selectors.user_next_expiry(user=owner)
    retry_after = int((next_expiry - timezone.now()).total_seconds()) if next_expiry else 3600
    raise QuotaExceeded(
        f"This upload ({_human_bytes(incoming)}) would pass your storage limit of {_human_bytes(limit)}: "
        f"your files already take {_human_bytes(stored)}. Delete jobs you no longer need, or wait until "
        "older files expire, and try again.",
        "storage_quota_exceeded",
        retry_after=max(60, retry_after),
    )


def quota_check(*, owner, incoming: int) -> None:
    """Refuse (QuotaExceeded) an upload of `incoming` bytes that would pass one of the owner's limits."""
    _queued_quota_check(owner=owner)
    _bytes_quota_check(owner=owner, incoming=incoming)


def display_filename(name: str) -> str:
    """The uploaded name as safe display text: no path parts, no control characters, capped length."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if not unicodedata.category(char).startswith("C")).strip().strip(".")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:16] if dot else ""
        name = name[: MAX_FILENAME_LENGTH - len(extension) - 1] + ("." + extension if extension else "")
    return name or "upload"


@contextmanager
def _local_path(upload: UploadedFile):
    """A path ffmpeg can open: the spooled temp file, or a copy of a small in-memory upload."""
    if hasattr(upload, "temporary_file_path"):
        yield upload.temporary_file_path()
        return
    with tempfile.NamedTemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".upload") as copy:
        upload.seek(0)
        shutil.copyfileobj(upload, copy, length=1024 * 1024)
        copy.flush()
        yield copy.name


def _content_sha256(upload: UploadedFile, path: str) -> str:
    """The upload's SHA-256: computed while it arrived (uploads.upload_handlers), else read now."""
    known = getattr(upload, "content_sha256", None)
    if known:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as stored:
        while block := stored.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _extraction_limits(info: ffmpeg.MediaInfo) -> ffmpeg.ChildLimits:
    return ffmpeg.ChildLimits.for_duration(
        info.duration,
        base_seconds=settings.FFMPEG_TIME_LIMIT_BASE,
        seconds_per_second=settings.FFMPEG_TIME_LIMIT_FACTOR,
        memory_mb=settings.FFMPEG_MEMORY_LIMIT_MB,
    )


def _store_for_conversion(
    path: str,
    info: ffmpeg.MediaInfo,
    options: conversion_options.JobOptions,
    *,
    filename: str,
    metadata: dict,
    timer: PhaseTimer,
) -> dict:
    """Take out of the upload what a conversion needs and store it: the Job fields naming the files.

    The audio tracks are stream-copied into one small seekable file (ffmpeg.extract_audio). An audio
    upload is its own source, and so is a video whose audio no container we write can carry as it is.
    A video also gets its cover frame, whether or not this job embeds it. On any failure what was
    stored is deleted again and the temp files go with their directory.
    """
    stem = filename.rsplit(".", 1)[0] or "audio"
    stored: list[tuple[str, str]] = []

    def save(bucket: str, local: str | Path, *, name: str, content_type: str) -> storage.StoredFile:
        with timer.phase("store"):
            kept = storage.save_path(bucket, local, filename=name, content_type=content_type, metadata=metadata)
        stored.append((bucket, kept.file_id))
        return kept

    limits = _extraction_limits(info)
    try:
        with workdirs.locked_temp_dir("extract", parent=settings.FILE_UPLOAD_TEMP_DIR) as workdir:
            fields: dict = {}
            source, source_type, source_name = path, "application/octet-stream", filename
            if info.video_codecs:
                audio_format = ffmpeg.audio_source_format(info.container)
                extracted = Path(workdir) / f"audio{ffmpeg.AUDIO_SOURCE_SUFFIXES[audio_format]}"
                cover = Path(workdir) / "cover.jpg"
                at = conversion_options.cover_grab_time(options, duration=info.duration)
                exact_cover = options.cover_time is not None  # else the first key frame from 10 % in

                # One after the other: run side by side they saved 0.1 s but took the web worker's peak
                # memory (with its ffmpeg children) past 200 MiB on a 1 GiB upload (make bench).
                with timer.phase("extract"):
                    copied = ffmpeg.extract_audio(path, extracted, container=info.container, limits=limits)
                with timer.phase("cover"):
                    grabbed = ffmpeg.grab_frame(
                        path, cover, at=at, container=info.container, exact=exact_cover, limits=limits
                    )
                if copied:
                    source, source_type = extracted, f"audio/x-{audio_format}"
                    source_name = stem + extracted.suffix
                else:
                    logger.info("%s: no container carries its audio as is; the upload is its own source", filename)
                if grabbed:
                    kept = save(storage.SOURCES, cover, name=f"{stem}.jpg", content_type="image/jpeg")
                    fields.update(cover_file_id=kept.file_id, cover_size=kept.size)
            kept = save(storage.SOURCES, source, name=source_name, content_type=source_type)
            fields.update(source_file_id=kept.file_id, source_size=kept.size)
            if settings.KEEP_SOURCE_VIDEOS and source is not path:
                kept = save(storage.VIDEOS, path, name=filename, content_type="application/octet-stream")
                fields.update(video_file_id=kept.file_id)
            return fields
    except BaseException:
        _stored_delete(stored)
        raise


def _stored_delete(stored: list[tuple[str, str]]) -> None:
    """Delete files stored for an upload that did not become a job."""
    for bucket, file_id in stored:
        try:
            storage.delete(bucket, file_id)
        except storage.StorageError:  # the store failed meanwhile: cleanup_storage removes them later
            logger.warning("could not delete %s/%s after a refused upload", bucket, file_id)


def job_create(*, owner, upload: UploadedFile, options: conversion_options.JobOptions | None = None) -> Job:
    """Probe the upload, store what its conversion needs in GridFS and queue it; nothing is stored when
    it is refused.

    `options` were validated on their own (conversion.options.parse_options); what depends on the file
    (trim within its duration, the chosen audio track) is checked here, after probing. None: defaults.
    An upload that dedup can serve (the owner's done job of the same content and options) stores nothing:
    the new job shares the earlier one's files.
    """
    if options is None:
        options = conversion_options.default_options(default_bitrate=settings.MP3_BITRATE_KBPS)
    if upload.size == 0:
        raise UploadRejected(422, "The file is empty; choose a video or audio file.", "empty_file")
    if upload.size > settings.MAX_UPLOAD_SIZE:
        raise UploadRejected(413, too_large_sentence(), "too_large")
    quota_check(owner=owner, incoming=1)  # the exact check, on what is stored, comes under a lock below
    options_key = options.key()
    filename = display_filename(upload.name)
    timer = PhaseTimer(receive=getattr(upload, "receive_seconds", 0.0), hash=getattr(upload, "hash_seconds", 0.0))
    with _local_path(upload) as path:
        with timer.phase("hash"):
            sha256 = _content_sha256(upload, path)
        try:
            with timer.phase("probe"):
                info = ffmpeg.probe(path)
        except ffmpeg.MediaError as exc:
            raise UploadRejected(422, str(exc), exc.code) from None
        try:
            conversion_options.check_against_media(options, duration=info.duration, audio_streams=info.audio_streams)
        except conversion_options.OptionsInvalid as exc:
            raise options_rejected(exc) from None
        job_id = uuid.uuid4()
        metadata = {"job_id": str(job_id), "owner_id": owner.pk}
        row = {
            "id": job_id,
            "owner": owner,
            "original_filename": filename,
            "size": upload.size,
            "content_sha256": sha256,
            "container": info.container[:64],
            "audio_codec": (info.audio_codecs[0] if info.audio_codecs else "")[:32],
            "video_codec": (info.video_codecs[0] if info.video_codecs else "")[:32],
            "duration": info.duration,
            "audio_streams": info.audio_streams,
            "source_tags": info.tags,
            "options": options.canonical(),
            "options_key": options_key,
        }
        store = partial(_store_for_conversion_or_refuse, path, info, options, filename=filename, metadata=metadata)
        files: dict | None = None
        if not _reusable_job_exists(owner=owner, content_sha256=sha256, options_key=options_key):
            files = store(timer=timer)
        with timer.phase("commit"):
            job = _job_insert(row, files=files)
        if job is None:  # the done job dedup would have reused was deleted meanwhile: convert after all
            job = _job_insert(row, files=store(timer=timer))
    logger.info("upload timings job=%s %s", job.id, timer.summary())
    return job


def job_create_from_digest(*, owner, content_sha256: str, options: conversion_options.JobOptions) -> Job | None:
    """A job for a re-upload declared by its SHA-256 alone (RFC 9530 Repr-Digest), done at once with the
    files of the owner's done job of that content and options; None when there is none (the body is
    read then, as for any upload). Stores nothing, so no quota applies."""
    options_key = options.key()
    with transaction.atomic():
        user_lock(user=owner)
        earlier = _reusable_job(owner=owner, content_sha256=content_sha256, options_key=options_key)
        if earlier is None:
            return None
        probed = ("original_filename", "size", "container", "audio_codec", "video_codec", "duration")
        job = Job.objects.create(
            owner=owner,
            content_sha256=content_sha256,
            audio_streams=earlier.audio_streams,
            source_tags=earlier.source_tags,
            options=options.canonical(),
            options_key=options_key,
            **{field: getattr(earlier, field) for field in probed},
            **_reused_fields(earlier),
        )
        transaction.on_commit(partial(_publish_mp3_message, job.id))  # ready at once: say so
    logger.info("job %s reuses the MP3 of job %s, declared by its digest (body not read)", job.id, earlier.id)
    return job


def _store_for_conversion_or_refuse(*args, **kwargs) -> dict:
    try:
        return _store_for_conversion(*args, **kwargs)
    except ffmpeg.MediaError as exc:
        raise UploadRejected(422, str(exc), exc.code) from None


def _job_insert(row: dict, *, files: dict | None) -> Job | None:
    """Create the job (queued with its own files, or done at once sharing an earlier job's); None when it
    has no files and there is no longer a job to share them with."""
    owner = row["owner"]
    stored = [(bucket, file_id) for bucket, field in JOB_FILE_FIELDS if (file_id := (files or {}).get(field))]
    try:
        with transaction.atomic():
            # One upload at a time per user past this point, so two parallel uploads cannot both
            # squeeze under a limit; the refused one's files are deleted below.
            user_lock(user=owner)
            earlier = _reusable_job(owner=owner, content_sha256=row["content_sha256"], options_key=row["options_key"])
            if earlier is None and files is None:
                return None
            if earlier is None:
                incoming = sum(files.get(size) or 0 for size in ("source_size", "cover_size"))
                incoming += row["size"] if files.get("video_file_id") else 0
                quota_check(owner=owner, incoming=incoming)
                job = Job.objects.create(**row, **files)
                job_queue_on_commit(job.id)
            else:
                job = Job.objects.create(**row, **_reused_fields(earlier))
                transaction.on_commit(partial(_publish_mp3_message, job.id))  # ready at once: say so
    except Exception:
        _stored_delete(stored)
        raise
    if earlier is not None:
        _stored_delete(stored)  # converted meanwhile by an identical upload: share its files instead
        logger.info("job %s reuses the MP3 of job %s (same content, same options)", job.id, earlier.id)
    return job


def _reusable_jobs(*, owner, content_sha256: str, options_key: str):
    return Job.objects.filter(
        owner=owner, content_sha256=content_sha256, options_key=options_key, status=Job.Status.DONE
    ).exclude(mp3_file_id="")


def _reusable_job_exists(*, owner, content_sha256: str, options_key: str) -> bool:
    """Whether dedup will likely serve this upload, so extracting and storing its audio can be skipped."""
    return _reusable_jobs(owner=owner, content_sha256=content_sha256, options_key=options_key).exists()


def _reusable_job(*, owner, content_sha256: str, options_key: str) -> Job | None:
    """The owner's latest done job of the same content and options, locked so it cannot be deleted
    or expired while a new job starts sharing its MP3."""
    return (
        _reusable_jobs(owner=owner, content_sha256=content_sha256, options_key=options_key)
        .select_for_update()
        .order_by("-finished_at")
        .first()
    )


def _reused_fields(earlier: Job) -> dict:
    """A job done at once: it shares the earlier job's MP3, audio source and cover (deleted with the last job)."""
    now = timezone.now()
    return {
        "status": Job.Status.DONE,
        "progress": 100,
        "mp3_file_id": earlier.mp3_file_id,
        "mp3_size": earlier.mp3_size,
        "mp3_duration": earlier.mp3_duration,
        "source_file_id": earlier.source_file_id,
        "source_size": earlier.source_size,
        "cover_file_id": earlier.cover_file_id,
        "cover_size": earlier.cover_size,
        "input_loudness": earlier.input_loudness,
        "reused_from": earlier.id,
        "started_at": now,
        "finished_at": now,
    }


def too_large_sentence() -> str:
    limit = settings.MAX_UPLOAD_SIZE
    human = f"{limit / 1024**3:.1f} GiB" if limit >= 1024**3 else f"{limit / 1024**2:.0f} MiB"
    return f"The file is larger than this server's limit of {human}; trim or compress it and try again."


def mp3_file_id_for(job_id, *, attempt: str) -> str:
    """Each conversion attempt stores its MP3 under an id of its own (the job's and the attempt's). Only
    the attempt that marks the job done points the job at its file; one that lost the job meanwhile
    (paused, partitioned, recovered by the sweeper) can only ever delete its own."""
    return f"mp3-{job_id}-{attempt[:12]}"


def mp3_metadata(job_id, *, attempt: str) -> dict:
    """What an attempt's MP3 carries in GridFS, so cleanup can tell a running attempt's file."""
    return {"job_id": str(job_id), "attempt": attempt}


def job_other_attempts_discard(*, job_id, kept_mp3_id: str) -> None:
    """The job is done with kept_mp3_id: remove what its earlier attempts left (a partial MP3 of a killed
    converter). An attempt still running elsewhere (woken from a pause) removes its own file anyway."""
    for file_id in storage.file_ids_with_prefix(storage.MP3S, f"mp3-{job_id}") - {kept_mp3_id}:
        if not Job.objects.filter(mp3_file_id=file_id).exists():
            storage.delete(storage.MP3S, file_id)


def _publish_video_message(job_id, *, claimed: bool = False) -> None:
    """Publish the job's `video` message and record the broker's confirm.

    A broker outage must not fail a committed upload: the job stays queued with no
    published_at, and the sweeper publishes it once the broker is back. (`claimed`: the sweeper set
    published_at to claim this publish; it is cleared again when the publish fails.)
    """
    try:
        broker.publish(broker.VIDEO, str(job_id))
    except broker.BrokerError as exc:
        logger.warning("job %s stays queued until the broker is back: %s", job_id, exc)
        if claimed:
            Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(published_at=None)
        return
    Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(published_at=timezone.now())


def _publish_mp3_message(job_id) -> None:
    try:
        broker.publish(broker.MP3, str(job_id))
    except broker.BrokerError as exc:
        logger.warning("job %s is done; its notification waits for the broker: %s", job_id, exc)
        return
    Job.objects.filter(id=job_id).update(mp3_published_at=timezone.now())


def job_queue_on_commit(job_id) -> None:
    transaction.on_commit(partial(_publish_video_message, job_id))


class DatabaseNow(Now):
    """The database server's clock, in UTC. Leases and claims are set and judged by this one clock, so
    converters whose host clocks disagree, or a paused VM whose clock jumps, cannot misjudge a lease."""

    def as_mysql(self, compiler, connection, **extra_context):
        # CURRENT_TIMESTAMP is in the session's time zone; Django stores UTC.
        return self.as_sql(compiler, connection, template="UTC_TIMESTAMP(6)", **extra_context)


def _database_now_plus(seconds: float):
    return ExpressionWrapper(DatabaseNow() + timedelta(seconds=seconds), output_field=DateTimeField())


def _lease_until():
    return _database_now_plus(settings.JOB_LEASE_SECONDS)


def job_claim_for_conversion(*, job_id, lease_owner: str) -> Job | None:
    """queued -> converting under a lease; None when the job is not waiting (a duplicate message)."""
    claimed = Job.objects.filter(id=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.CONVERTING,
        started_at=timezone.now(),
        progress=0,
        error="",
        attempts=F("attempts") + 1,
        lease_owner=lease_owner,
        lease_expires_at=_lease_until(),
        retry_at=None,
    )
    return Job.objects.get(id=job_id) if claimed else None


def job_renew_lease(*, job_id, lease_owner: str) -> bool:
    """False when the attempt lost the job: cancelled, or recovered by the sweeper after a stall."""
    return bool(
        Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
            lease_expires_at=_lease_until()
        )
    )


def job_release(*, job_id, lease_owner: str) -> None:
    """converting -> queued at once: the worker hands the job back (shutdown)."""
    with transaction.atomic():
        released = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
            status=Job.Status.QUEUED,
            progress=0,
            lease_owner="",
            lease_expires_at=None,
            published_at=None,
            updated_at=DatabaseNow(),
        )
        if released:
            job_queue_on_commit(job_id)


def job_retry_later(*, job_id, lease_owner: str, reason: str) -> str:
    """A store was unreachable: queue the job again after an exponential backoff, or fail it past the limit."""
    job = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).first()
    if job is None:
        return "lost"
    failures = job.transient_failures + 1
    if failures > settings.MAX_TRANSIENT_RETRIES:
        job_mark_failed(
            job_id=job_id,
            lease_owner=lease_owner,
            sentence=f"{reason} It failed {failures} times in a row; retry this job later.",
            transient_failures=failures,
        )
        return "failed"
    delay = retry_delay(failures, base=settings.RETRY_BACKOFF_SECONDS)
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
        status=Job.Status.QUEUED,
        progress=0,
        lease_owner="",
        lease_expires_at=None,
        published_at=None,
        transient_failures=failures,
        retry_at=_database_now_plus(delay),
        updated_at=DatabaseNow(),
    )
    logger.warning("job %s will be retried in %d s: %s", job_id, delay, reason)
    return "retrying"


def job_record_input_loudness(*, job_id, lease_owner: str, loudness: dict) -> None:
    """loudnorm's measurement of the input, kept on the job (shown in its detail)."""
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(input_loudness=loudness)


def job_set_progress(*, job_id, lease_owner: str, percent: int) -> None:
    Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner, progress__lt=percent).update(
        progress=percent
    )


def job_mark_done(*, job_id, lease_owner: str, mp3: storage.StoredFile, mp3_duration: float | None) -> bool:
    """converting -> done, and queue the notification; False when this attempt no longer holds the job."""
    with transaction.atomic():
        finished = Job.objects.filter(id=job_id, status=Job.Status.CONVERTING, lease_owner=lease_owner).update(
            status=Job.Status.DONE,
            progress=100,
            mp3_file_id=mp3.file_id,
            mp3_size=mp3.size,
            mp3_duration=mp3_duration,
            finished_at=timezone.now(),
            error="",
            lease_owner="",
            lease_expires_at=None,
        )
        if finished:
            transaction.on_commit(partial(_publish_mp3_message, job_id))
    return bool(finished)


def job_mark_failed(*, job_id, sentence: str, lease_owner: str | None = None, **counters) -> bool:
    jobs = Job.objects.filter(id=job_id, status__in=[Job.Status.QUEUED, Job.Status.CONVERTING])
    if lease_owner is not None:
        jobs = jobs.filter(lease_owner=lease_owner)
    return bool(
        jobs.update(
            status=Job.Status.FAILED,
            error=sentence,
            finished_at=timezone.now(),
            lease_owner="",
            lease_expires_at=None,
            **counters,
        )
    )


def jobs_sweep() -> dict[str, int]:
    """Recover what a crash, a broker outage or a lost message left behind. Safe to run in every
    converter at once: each recovery is a conditional update that only one of them wins."""
    now = timezone.now()
    counts = {"recovered": 0, "failed": 0, "published": 0, "notifications": 0}

    for job in Job.objects.filter(status=Job.Status.CONVERTING, lease_expires_at__lt=DatabaseNow()):
        dead_attempt = Job.objects.filter(
            id=job.id, status=Job.Status.CONVERTING, lease_owner=job.lease_owner, lease_expires_at__lt=DatabaseNow()
        )
        if job.recoveries + 1 >= settings.MAX_CRASH_RECOVERIES:
            sentence = (
                f"The converter stopped {job.recoveries + 1} times while working on this file, so it was given up; "
                "the file may be damaged. Re-export it and upload it again."
            )
            if dead_attempt.update(
                status=Job.Status.FAILED,
                error=sentence,
                finished_at=now,
                recoveries=F("recoveries") + 1,
                lease_owner="",
                lease_expires_at=None,
            ):
                counts["failed"] += 1
                _dead_letter(broker.VIDEO, job.id, "crash recovery limit")
            continue
        if dead_attempt.update(
            status=Job.Status.QUEUED,
            progress=0,
            recoveries=F("recoveries") + 1,
            lease_owner="",
            lease_expires_at=None,
            published_at=None,
            retry_at=None,
            updated_at=DatabaseNow(),
        ):
            logger.warning("job %s: its converter died (lease expired); queued again", job.id)
            counts["recovered"] += 1
            job_queue_on_commit(job.id)  # this sweeper won the recovery: it publishes the job too

    # Not yet published: a job queued within the last 2 s is being published by whoever queued it.
    unpublished = Q(published_at__isnull=True, updated_at__lt=_database_now_plus(-2)) & (
        Q(retry_at__isnull=True) | Q(retry_at__lte=DatabaseNow())
    )
    lost = Q(published_at__lt=_database_now_plus(-settings.STALE_QUEUED_SECONDS))
    waiting = Q(status=Job.Status.QUEUED) & (unpublished | lost)
    for job_id in Job.objects.filter(waiting).values_list("id", flat=True):
        # Claimed like a state change, so of the sweepers that saw this job only one publishes it.
        if Job.objects.filter(waiting, id=job_id).update(published_at=DatabaseNow(), updated_at=DatabaseNow()):
            _publish_video_message(job_id, claimed=True)
            counts["published"] += 1

    # A converter that died right after committing `done` may have left the source video behind.
    if not settings.KEEP_SOURCE_VIDEOS:
        for job in Job.objects.filter(status=Job.Status.DONE, finished_at__lt=now - timedelta(seconds=2)).exclude(
            video_file_id=""
        ):
            job_source_video_discard(job=job)

    # An email whose retry is due, or whose message was lost: published again, claimed like a state
    # change so that of the sweepers that saw it only one publishes it.
    lost = Q(notify_retry_at__isnull=True, finished_at__lt=_database_now_plus(-2)) & (
        Q(mp3_published_at__isnull=True)
        | Q(mp3_published_at__lt=_database_now_plus(-settings.STALE_NOTIFICATION_SECONDS))
    )
    waiting = _notification_due() & (lost | Q(notify_retry_at__isnull=False))
    for job_id in Job.objects.filter(waiting).values_list("id", flat=True):
        if Job.objects.filter(waiting, id=job_id).update(mp3_published_at=DatabaseNow(), notify_retry_at=None):
            _publish_mp3_message(job_id)
            counts["notifications"] += 1
    return counts


def _dead_letter(queue: str, job_id, reason: str) -> None:
    """Leave a trace in the dead-letter queue for operators, beside the job's own sentence."""
    try:
        broker.publish_dead_letter(queue, str(job_id), reason=reason)
    except broker.BrokerError:
        logger.warning("could not dead-letter job %s (%s): the broker is unreachable", job_id, reason)


def job_retry(*, job: Job) -> Job:
    """failed -> queued, and queue it again."""
    if job.status != Job.Status.FAILED:
        raise JobStateConflict(f"Only a failed job can be retried; this one is {job.status}.")
    source = selectors.job_conversion_source(job=job)
    if source is None or not storage.file_exists(*source):
        raise JobStateConflict("The uploaded file is no longer stored, so this job cannot be retried; upload it again.")
    with transaction.atomic():
        user_lock(user=job.owner)
        _queued_quota_check(owner=job.owner)
        updated = Job.objects.filter(id=job.id, status=Job.Status.FAILED).update(
            status=Job.Status.QUEUED,
            error="",
            progress=0,
            finished_at=None,
            started_at=None,
            published_at=None,
            recoveries=0,
            transient_failures=0,
            retry_at=None,
            updated_at=DatabaseNow(),
        )
        if not updated:
            raise JobStateConflict("This job changed state meanwhile; reload it and try again.")
        job_queue_on_commit(job.id)
        job.refresh_from_db()  # inside the transaction: the state this request made, not a converter's next one
    return job


def job_delete(*, job: Job) -> Job | None:
    """Remove a job and its files. A job being converted is cancelled instead: its converter
    notices, stops ffmpeg and stores nothing; the cancelled row stays until deleted again."""
    with transaction.atomic():
        # Locked, so a new upload that would share its MP3 (dedup) waits and then finds it gone.
        job = Job.objects.select_for_update().filter(id=job.id).first() or job
        cancelled = Job.objects.filter(id=job.id, status=Job.Status.CONVERTING).update(
            status=Job.Status.CANCELLED,
            finished_at=timezone.now(),
            error="Cancelled by its owner while converting.",
            lease_owner="",
            lease_expires_at=None,
            # Its files are deleted next: they no longer count toward the owner's storage quota
            # (should the delete fail, cleanup_storage removes the unreferenced files later).
            **{field: "" for _bucket, field in JOB_FILE_FIELDS if field != "mp3_file_id"},
        )
        if cancelled:
            transaction.on_commit(partial(job_files_release, job))  # `job` still names the files
            return Job.objects.get(id=job.id)
        Job.objects.filter(id=job.id).delete()  # its files go after the commit (job_row_deleted)
    return None


def job_row_deleted(sender, instance: Job, **kwargs) -> None:
    """post_delete of a Job, however it went (the API, the admin, a user deleted with all their jobs):
    its files are released once the deletion commits."""
    transaction.on_commit(partial(job_files_release, instance))


def job_files_release(job: Job) -> None:
    """Delete the files a deleted or cancelled job named, each unless a live job still names it.

    Run after the commit that let go of them: of two jobs sharing a file (dedup) deleted at the same
    moment, the one that commits last then sees the file free, where inside their transactions
    MariaDB's REPEATABLE READ would show each of them the other. A store failure leaves the files to
    cleanup_storage, which removes what no job names."""
    try:
        _job_files_delete(job)
    except storage.StorageError as exc:
        logger.warning("the files of job %s stay until the storage cleanup: %s", job.id, exc)


def _job_files_delete(job: Job) -> None:
    """Delete the job's files, each unless another job that is not expired names it (dedup): the last one
    deletes it. Its attempts' MP3s go too, for what an interrupted or overtaken conversion left."""
    others = Job.objects.exclude(id=job.id).exclude(status=Job.Status.EXPIRED)
    for bucket, field in JOB_FILE_FIELDS:
        file_ids = {getattr(job, field)}
        if field == "mp3_file_id":  # and whatever its attempts wrote (and the id MP3s had before attempt ids)
            file_ids |= storage.file_ids_with_prefix(bucket, f"mp3-{job.id}")
        for file_id in file_ids - {""}:
            if not others.filter(**{field: file_id}).exists():
                storage.delete(bucket, file_id)


def jobs_expire(*, now=None) -> dict[str, int]:
    """Retention: delete the files of jobs finished more than RETENTION_DAYS ago and mark them expired.

    Run by `manage.py purge_expired` and by every converter's housekeeping; each expiry is a
    conditional update, so parallel runs (and a concurrent retry) never both act on a job. Files
    a store outage kept are deleted on a later run: expired jobs still naming a file are retried.
    """
    days = settings.RETENTION_DAYS
    counts = {"expired": 0, "files_deleted": 0}
    if days <= 0:
        return counts
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    sentence = (
        f"This job's files were deleted on {now:%Y-%m-%d}: this server keeps finished files for {days} "
        f"day{'s' if days != 1 else ''}. Upload the file again to convert it again."
    )
    finished = Job.objects.filter(status__in=[Job.Status.DONE, Job.Status.FAILED], finished_at__lt=cutoff)
    for job_id in finished.values_list("id", flat=True):
        counts["expired"] += Job.objects.filter(
            id=job_id, status__in=[Job.Status.DONE, Job.Status.FAILED], finished_at__lt=cutoff
        ).update(status=Job.Status.EXPIRED, error=sentence, progress=0)
    no_files = {field: "" for _bucket, field in JOB_FILE_FIELDS}
    for job in Job.objects.filter(status=Job.Status.EXPIRED).exclude(**no_files):
        try:
            _job_files_delete(job)
        except storage.StorageError as exc:
            logger.warning("retention: files of job %s stay until the store is back: %s", job.id, exc)
            break
        Job.objects.filter(id=job.id, status=Job.Status.EXPIRED).update(**no_files)
        counts["files_deleted"] += 1
    if any(counts.values()):
        logger.info("retention: %s", counts)
    return counts


def job_source_video_discard(*, job: Job) -> None:
    """After a successful conversion a job from before the audio source no longer needs its video,
    unless KEEP_SOURCE_VIDEOS. A newer job's video is stored only with KEEP_SOURCE_VIDEOS, and kept."""
    if settings.KEEP_SOURCE_VIDEOS or not job.video_file_id:
        return
    storage.delete(storage.VIDEOS, job.video_file_id)
    Job.objects.filter(id=job.id).update(video_file_id="")


def _notification_due() -> Q:
    """Done, not notified, not being sent by a notifier, not waiting out a backoff, not given up."""
    return (
        Q(status=Job.Status.DONE, notified_at__isnull=True, notify_attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
        & (Q(notify_claimed_until__isnull=True) | Q(notify_claimed_until__lt=DatabaseNow()))
        & (Q(notify_retry_at__isnull=True) | Q(notify_retry_at__lte=DatabaseNow()))
    )


def job_claim_notification(*, job_id, seconds: int = 60) -> Job | None:
    """Hold the right to send this job's email for a while; None when it was sent, another notifier is
    sending it, its next try is not due yet, or it was given up."""
    claimed = Job.objects.filter(_notification_due(), id=job_id).update(
        notify_claimed_until=_database_now_plus(seconds)
    )
    return Job.objects.select_related("owner").get(id=job_id) if claimed else None


def job_renew_notification_claim(*, job_id, seconds: int) -> bool:
    """Extend the claim while a slow mail server is still taking the email; False once it is no longer held."""
    return bool(
        Job.objects.filter(id=job_id, notified_at__isnull=True, notify_claimed_until__isnull=False).update(
            notify_claimed_until=_database_now_plus(seconds)
        )
    )


def job_record_notification(*, job_id) -> None:
    """The email was accepted by the mail server: never send it again."""
    Job.objects.filter(id=job_id, notified_at__isnull=True).update(
        notified_at=timezone.now(), notify_claimed_until=None
    )


def job_notification_failed(*, job_id, reason: str) -> str:
    """The send failed: try again after a backoff (the sweeper publishes the job when it is due), or give
    up past NOTIFY_MAX_ATTEMPTS, leaving one trace in the dead-letter queue. "retrying" or "given up".

    The message itself is acknowledged, not requeued: a mail server down for an hour costs a handful of
    tries per job, not a requeue storm into the dead-letter queue."""
    attempts = Job.objects.get(id=job_id).notify_attempts + 1
    give_up = attempts >= settings.NOTIFY_MAX_ATTEMPTS
    delay = retry_delay(attempts, base=settings.NOTIFY_RETRY_BASE_SECONDS)
    Job.objects.filter(id=job_id, notified_at__isnull=True).update(
        notify_attempts=attempts,
        notify_error=reason[:1000],
        notify_claimed_until=None,
        notify_retry_at=None if give_up else _database_now_plus(delay),
    )
    if give_up:
        logger.error("job %s: its email failed %d times; given up: %s", job_id, attempts, reason)
        _dead_letter(broker.MP3, job_id, f"email failed {attempts} times: {reason}")
        return "given up"
    logger.warning("job %s: its email failed (%s); try %d in %.0f s", job_id, reason, attempts + 1, delay)
    return "retrying"


def storage_cleanup(*, older_than_seconds: int = 3600) -> dict[str, int]:
    """Remove stored files no job needs: videos, audio sources, covers and MP3s whose job is gone or does not use them,
    and chunks an interrupted write left without a file. Recent files are left alone, since an
    upload or a conversion may be writing them right now."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    counts = {"videos": 0, "sources": 0, "mp3s": 0, "orphan_chunks": 0}
    for file_id, _metadata in storage.files_uploaded_before(storage.VIDEOS, cutoff):
        if not Job.objects.filter(video_file_id=file_id).exists():
            counts["videos"] += storage.delete(storage.VIDEOS, file_id)
    for file_id, _metadata in storage.files_uploaded_before(storage.SOURCES, cutoff):
        if not Job.objects.filter(Q(source_file_id=file_id) | Q(cover_file_id=file_id)).exists():
            counts["sources"] += storage.delete(storage.SOURCES, file_id)
    for file_id, metadata in storage.files_uploaded_before(storage.MP3S, cutoff):
        if metadata.get("attempt"):  # an attempt's MP3 is spared while that attempt still holds its job
            attempt_running = Q(
                id=selectors.job_id_parse(metadata.get("job_id")),
                status=Job.Status.CONVERTING,
                lease_owner=metadata["attempt"],
            )
        else:  # MP3s from before attempt ids: "mp3-<job id>"
            attempt_running = Q(id=_job_id_of_mp3(file_id), status=Job.Status.CONVERTING)
        if not Job.objects.filter(Q(mp3_file_id=file_id) | attempt_running).exists():
            counts["mp3s"] += storage.delete(storage.MP3S, file_id)
    for bucket in (storage.VIDEOS, storage.SOURCES, storage.MP3S):
        for file_id in storage.orphan_chunk_file_ids(bucket, cutoff):
            storage.delete(bucket, file_id)
            counts["orphan_chunks"] += 1
    return counts


def _job_id_of_mp3(file_id: str):
    try:
        return uuid.UUID(file_id.removeprefix("mp3-"))
    except ValueError:
        return None
