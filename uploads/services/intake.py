"""Intake: an upload becomes a queued job. Quotas, the probe, the audio source and cover extracted
from the spooled upload, dedup of an identical earlier upload, and the insert that queues it."""

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import unicodedata
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from accounts.services import user_lock
from core import storage, workdirs
from core.media import ffmpeg, probe
from core.timing import PhaseTimer
from uploads import options as job_options
from uploads import selectors
from uploads.models import Job
from uploads.services.counters import UPLOADED_BYTES, counters_add
from uploads.services.deletion import JOB_FILE_FIELDS
from uploads.services.publishing import job_queue_on_commit, mp3_message_publish
from uploads.tags import id3_tags

logger = logging.getLogger(__name__)


MAX_FILENAME_LENGTH = 200


class UploadRejected(Exception):
    """The upload is refused; `status` is the HTTP answer and str() the sentence (`errors`: per field)."""

    def __init__(self, status: int, sentence: str, code: str, errors: dict[str, list[str]] | None = None):
        super().__init__(sentence)
        self.status = status
        self.code = code
        self.errors = errors


def options_rejected(exc: job_options.OptionsInvalid) -> UploadRejected:
    return UploadRejected(400, f"Some output options are not valid; {exc}", "invalid_options", errors=exc.errors)


class QuotaExceeded(UploadRejected):
    """A per-user limit is reached (HTTP 429); retry_after says in how many seconds trying again may work."""

    def __init__(self, sentence: str, code: str, *, retry_after: int):
        super().__init__(429, sentence, code)
        self.retry_after = retry_after


# A queued job usually finishes within minutes; a client refused for too many queued jobs waits this long.
QUEUED_QUOTA_RETRY_AFTER_SECONDS = 60


def human_bytes(size: int) -> str:
    """2147483648 -> "2.0 GB", 26214400 -> "25 MB": binary units named as the pages' own (app.js formatBytes)
    and Django's filesizeformat name them, so one size reads the same in every sentence and on every page."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{round(value)} {unit}"
    return f"{size} bytes"


def queued_quota_check(*, owner, pending_uploads: int = 0) -> None:
    """`pending_uploads`: the owner's resumable uploads still arriving, each a job to come."""
    limit = settings.QUOTA_QUEUED_JOBS_PER_USER
    if limit > 0 and selectors.job_count_in_progress(user=owner) + pending_uploads >= limit:
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
        f"This upload ({human_bytes(incoming)}) would pass your storage limit of {human_bytes(limit)}: "
        f"your files already take {human_bytes(stored)}. Delete jobs you no longer need, or wait until "
        "older files expire, and try again.",
        "storage_quota_exceeded",
        retry_after=max(60, retry_after),
    )


def quota_check(*, owner, incoming: int, pending_uploads: int = 0) -> None:
    """Refuse (QuotaExceeded) an upload of `incoming` bytes that would pass one of the owner's limits."""
    queued_quota_check(owner=owner, pending_uploads=pending_uploads)
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


_ffmpeg_turns: threading.BoundedSemaphore | None = None
_ffmpeg_turns_lock = threading.Lock()


def _ffmpeg_turn() -> threading.BoundedSemaphore:
    """A turn among this process's UPLOAD_FFMPEG_CONCURRENCY ffmpeg children at upload: each within
    FFMPEG_MEMORY_LIMIT_MB, so the web pod's memory limit can hold them all beside the workers."""
    global _ffmpeg_turns
    with _ffmpeg_turns_lock:
        if _ffmpeg_turns is None:
            _ffmpeg_turns = threading.BoundedSemaphore(max(1, settings.UPLOAD_FFMPEG_CONCURRENCY))
        return _ffmpeg_turns


def _extraction_limits(info: probe.MediaInfo) -> ffmpeg.ChildLimits:
    return ffmpeg.ChildLimits.for_duration(
        info.duration,
        base_seconds=settings.FFMPEG_TIME_LIMIT_BASE,
        seconds_per_second=settings.FFMPEG_TIME_LIMIT_FACTOR,
        memory_mb=settings.FFMPEG_MEMORY_LIMIT_MB,
    )


def _store_for_conversion(
    path: str,
    info: probe.MediaInfo,
    options: job_options.JobOptions,
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
        with _ffmpeg_turn(), workdirs.locked_temp_dir("extract", parent=settings.FILE_UPLOAD_TEMP_DIR) as workdir:
            fields: dict = {}
            source, source_type, source_name = path, "application/octet-stream", filename
            if info.video_codecs:
                audio_format = ffmpeg.audio_source_format(info.container)
                extracted = Path(workdir) / f"audio{ffmpeg.AUDIO_SOURCE_SUFFIXES[audio_format]}"
                cover = Path(workdir) / "cover.jpg"
                at = job_options.cover_grab_time(options, duration=info.duration)
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


def job_create(*, owner, upload: UploadedFile, options: job_options.JobOptions | None = None) -> Job:
    """Probe the upload, store what its conversion needs in GridFS and queue it; nothing is stored when
    it is refused.

    `options` were validated on their own (uploads.options.parse_options); what depends on the file
    (trim within its duration, the chosen audio track) is checked here, after probing. None: defaults.
    An upload that dedup can serve (the owner's done job of the same content and options) stores nothing:
    the new job shares the earlier one's files.
    """
    if options is None:
        options = job_options.default_options(default_bitrate=settings.MP3_BITRATE_KBPS)
    if upload.size == 0:
        raise UploadRejected(422, "The file is empty; choose a video or audio file.", "empty_file")
    if upload.size > settings.MAX_UPLOAD_SIZE:
        raise UploadRejected(413, too_large_sentence(), "too_large")
    quota_check(owner=owner, incoming=1)  # the exact check, on what is stored, comes under a lock below
    filename = display_filename(upload.name)
    timer = PhaseTimer(receive=getattr(upload, "receive_seconds", 0.0), hash=getattr(upload, "hash_seconds", 0.0))
    with _local_path(upload) as path:
        with timer.phase("hash"):
            sha256 = _content_sha256(upload, path)
        try:
            with timer.phase("probe"):
                info = probe.probe(path)
        except ffmpeg.MediaError as exc:
            raise UploadRejected(422, str(exc), exc.code) from None
        try:
            job_options.check_against_media(options, duration=info.duration, audio_streams=info.audio_streams)
        except job_options.OptionsInvalid as exc:
            raise options_rejected(exc) from None
        options_key = dedup_key(options, original_filename=filename, source_tags=info.tags)
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


def job_create_from_digest(*, owner, content_sha256: str, options: job_options.JobOptions) -> Job | None:
    """A job for a re-upload declared by its SHA-256 alone (RFC 9530 Repr-Digest), done at once with the
    files of the owner's done job of that content and options; None when there is none (the body is
    read then, as for any upload). Stores nothing, so no quota applies.

    The body, and with it the file's name, is never read: the job takes the name of the job it reuses,
    which is the name the MP3's title tag came from when nothing else gave one."""
    with transaction.atomic():
        user_lock(user=owner)
        earlier = _reusable_job_under_its_name(owner=owner, content_sha256=content_sha256, options=options)
        if earlier is None:
            return None
        probed = ("original_filename", "size", "container", "audio_codec", "video_codec", "duration")
        job = Job.objects.create(
            owner=owner,
            content_sha256=content_sha256,
            audio_streams=earlier.audio_streams,
            source_tags=earlier.source_tags,
            options=options.canonical(),
            options_key=earlier.options_key,
            **{field: getattr(earlier, field) for field in probed},
            **_reused_fields(earlier),
        )
        transaction.on_commit(partial(mp3_message_publish, job.id))  # ready at once: say so
    logger.info("job %s reuses the MP3 of job %s, declared by its digest (body not read)", job.id, earlier.id)
    return job


def options_for_stored_job(*, job: Job, options: job_options.JobOptions) -> job_options.JobOptions:
    """`options` (validated on their own) for converting a job's stored audio again, checked against what
    its upload probed, every error at once (UploadRejected 400 invalid_options).

    The cover frame was taken once, at upload (the video is not kept): another frame time cannot be
    honoured, and no time keeps the frame that was taken, chosen or not."""
    errors: dict[str, list[str]] = {}
    try:
        job_options.check_against_media(options, duration=job.duration, audio_streams=job.audio_streams)
    except job_options.OptionsInvalid as exc:
        errors.update(exc.errors)
    earlier = job_options.JobOptions.from_stored(job.options)
    if job.cover_file_id and options.cover and options.cover_time is not None:
        if options.cover_time != earlier.cover_time:
            taken = job_options.cover_grab_time(earlier, duration=job.duration)
            errors.setdefault("cover_time", []).append(
                f"The cover frame was taken at {taken:g} seconds when the file was uploaded, and only that frame "
                "is kept; leave the cover time empty, or upload the file again to choose another frame."
            )
    if errors:
        raise options_rejected(job_options.OptionsInvalid(errors))
    if options.cover and options.cover_time is None and earlier.cover_time is not None:
        options = replace(options, cover_time=earlier.cover_time)  # the frame the job has
    return options


@dataclass
class UploadCheck:
    """What the upload of a file would meet, found without the file (upload_check)."""

    refusals: list[UploadRejected]  # in the order the upload would meet them; empty: it would be accepted
    info: probe.MediaInfo | None  # from the sparse copy, when it could be probed
    probed: bool  # False: no refusal is about the file's content, which the upload itself will check


def upload_check(
    *, owner, size: int, head: bytes, tail: bytes, options: job_options.JobOptions, option_errors: dict
) -> UploadCheck:
    """Every refusal the upload of a file of `size` bytes that begins with `head` and ends with `tail`
    would get, at once and before it is sent: over the size limit, a quota, option errors (`options`:
    the fields that parsed, `option_errors`: the others), an empty file, no audio, options that do not
    fit the file. Stores nothing.

    The file is probed from a sparse copy: head and tail at their places, zeros between, which costs
    no disk. Container headers are at the start (MKV, WebM, AVI, MPEG-TS, MP4 with faststart) or at the
    end (MP4's moov by default), so the probe usually reads what the whole file would show. A layout it
    cannot read gives probed=False: the upload itself decides then."""
    refusals: list[UploadRejected] = []
    if size > settings.MAX_UPLOAD_SIZE:
        refusals.append(UploadRejected(413, too_large_sentence(), "too_large"))
    try:
        quota_check(owner=owner, incoming=1)
    except QuotaExceeded as exc:
        refusals.append(exc)
    info, file_refusal = None, None
    if size == 0:
        file_refusal = UploadRejected(422, "The file is empty; choose a video or audio file.", "empty_file")
    elif size <= settings.MAX_UPLOAD_SIZE:
        info, file_refusal = _sparse_probe(size=size, head=head, tail=tail)
    errors = dict(option_errors)
    if info is not None:
        try:
            job_options.check_against_media(options, duration=info.duration, audio_streams=info.audio_streams)
        except job_options.OptionsInvalid as exc:
            errors.update(exc.errors)
    if errors:
        refusals.append(options_rejected(job_options.OptionsInvalid(errors)))
    if file_refusal is not None:
        refusals.append(file_refusal)
    return UploadCheck(refusals=refusals, info=info, probed=info is not None or file_refusal is not None)


_TS_PACKET = 188


def _sparse_probe(*, size: int, head: bytes, tail: bytes) -> tuple[probe.MediaInfo | None, UploadRejected | None]:
    """Probe the sparse copy: (its MediaInfo, None), (None, the no-audio refusal), or (None, None) when
    the head and tail do not tell."""
    whole = len(head) >= size
    with tempfile.NamedTemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".check") as sparse:
        sparse.write(head[:size])
        if not whole and tail:
            sparse.seek(size - len(tail))
            sparse.write(tail)
        sparse.truncate(size)
        sparse.flush()
        try:
            info = probe.probe(sparse.name)
        except ffmpeg.MediaError as exc:
            # A stream list read from headers is complete, so "no audio" is the upload's answer too; an
            # MPEG-TS lists its streams as their packets come, which may be past the head.
            is_ts = len(head) > _TS_PACKET and head[0] == head[_TS_PACKET] == 0x47
            if whole or (exc.code == "no_audio" and not is_ts):
                return None, UploadRejected(422, str(exc), exc.code)
            return None, None  # zeros where the probe needed the file's bytes: the upload will tell
    if not whole and "mpegts" in info.container.split(","):
        # A TS has no duration header: it is estimated from timestamps and the size, unreliable with zeros.
        info = probe.MediaInfo(
            info.container, None, info.audio_codecs, info.video_codecs, info.audio_streams, info.tags
        )
    return info, None


def _store_for_conversion_or_refuse(*args, **kwargs) -> dict:
    try:
        return _store_for_conversion(*args, **kwargs)
    except ffmpeg.MediaError as exc:
        # The uploader reads the sentence; ffmpeg's own words are for whoever runs the server.
        logger.warning(
            "upload %s (%s) refused (%s): %s ffmpeg said: %s",
            kwargs["metadata"]["job_id"],
            kwargs["filename"],
            exc.code,
            exc,
            exc.ffmpeg_said,
        )
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
                transaction.on_commit(partial(mp3_message_publish, job.id))  # ready at once: say so
            counters_add({UPLOADED_BYTES: row["size"]})  # received either way
    except Exception:
        _stored_delete(stored)
        raise
    if earlier is not None:
        _stored_delete(stored)  # converted meanwhile by an identical upload: share its files instead
        logger.info("job %s reuses the MP3 of job %s (same content, same options)", job.id, earlier.id)
    return job


# Version 1 keys held the options alone, so a job keyed then may carry another upload's name as its
# title: with the version in what is hashed, those rows match no new key and are never reused.
DEDUP_KEY_VERSION = 2


def dedup_key(options: job_options.JobOptions, *, original_filename: str, source_tags: dict | None) -> str:
    """What must match, beside owner and content, for an earlier job's MP3 to serve a new upload
    (Job.options_key): the options, and the tags the MP3 is written with. The title among them comes
    from the file's name when neither the options nor the file give one, so the same content under
    another name is converted again, and one with a title of its own is still reused."""
    filename_title = Job(original_filename=original_filename).mp3_filename.removesuffix(".mp3")
    tags = id3_tags(options, source_tags=source_tags, filename_title=filename_title)
    key = {"version": DEDUP_KEY_VERSION, "options": options.canonical(), "tags": tags}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _done_jobs_of(*, owner, content_sha256: str):
    return Job.objects.filter(owner=owner, content_sha256=content_sha256, status=Job.Status.DONE).exclude(
        mp3_file_id=""
    )


def _reusable_job_exists(*, owner, content_sha256: str, options_key: str) -> bool:
    """Whether dedup will likely serve this upload, so extracting and storing its audio can be skipped."""
    return _done_jobs_of(owner=owner, content_sha256=content_sha256).filter(options_key=options_key).exists()


def _reusable_job(*, owner, content_sha256: str, options_key: str) -> Job | None:
    """The owner's latest done job of the same content, options and tags, locked so it cannot be deleted
    or expired while a new job starts sharing its MP3."""
    return (
        _done_jobs_of(owner=owner, content_sha256=content_sha256)
        .filter(options_key=options_key)
        .select_for_update()
        .order_by("-finished_at")
        .first()
    )


def _reusable_job_under_its_name(*, owner, content_sha256: str, options: job_options.JobOptions) -> Job | None:
    """The owner's latest done job of this content whose MP3 these options would make under that job's
    own name (a re-upload whose name is unknown); locked as _reusable_job locks it."""
    earlier = _done_jobs_of(owner=owner, content_sha256=content_sha256).order_by("-finished_at")
    for original_filename, source_tags, options_key in earlier.values_list(
        "original_filename", "source_tags", "options_key"
    ):
        if options_key == dedup_key(options, original_filename=original_filename, source_tags=source_tags):
            return _reusable_job(owner=owner, content_sha256=content_sha256, options_key=options_key)
    return None


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
    return (
        f"The file is larger than this server's limit of {human_bytes(settings.MAX_UPLOAD_SIZE)}; "
        "trim or compress it and try again."
    )
