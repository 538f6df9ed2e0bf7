"""Reads of jobs. A user only ever sees their own: another user's job is 'not found'."""

import re
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, QuerySet
from django.utils import timezone

from core import storage, tokens
from uploads.models import Job, MetricCounter, PodcastFeed, ShareLink
from uploads.options import JobOptions
from uploads.tags import id3_tags


def job_list_for_user(*, user, status: str | None = None) -> QuerySet[Job]:
    jobs = Job.objects.filter(owner=user).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    return jobs


def job_id_parse(value) -> uuid.UUID | None:
    """The job id in value, or None when it cannot be one (the API answers 400 for those)."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def job_get_for_user(*, user, job_id) -> Job | None:
    parsed = job_id_parse(job_id)
    if parsed is None:
        return None
    return Job.objects.filter(owner=user, id=parsed).first()


def job_list_for_user_by_ids(*, user, job_ids) -> list[Job]:
    """The user's jobs among job_ids (parsed UUIDs); another user's are left out, as unknown ones are."""
    return list(Job.objects.filter(owner=user, id__in=list(job_ids)))


def job_get_by_mp3_file_id_for_user(*, user, file_id: str) -> Job | None:
    if not file_id or len(file_id) > 64:
        return None
    return Job.objects.filter(owner=user, mp3_file_id=file_id).first()


def job_get(*, job_id) -> Job | None:
    parsed = job_id_parse(job_id)
    return Job.objects.filter(id=parsed).first() if parsed else None


def job_id_require(value) -> uuid.UUID:
    """The job id in value, or Job.DoesNotExist: a message whose id can never name a job (the worker
    dead-letters it once instead of retrying it)."""
    parsed = job_id_parse(value)
    if parsed is None:
        raise Job.DoesNotExist(f"job_id {str(value)[:64]!r} is not a UUID")
    return parsed


def job_require(*, job_id) -> Job:
    """The job, or Job.DoesNotExist naming it."""
    job = job_get(job_id=job_id)
    if job is None:
        raise Job.DoesNotExist(f"no job {job_id}")
    return job


def job_ids_failed_between(*, since: datetime, until: datetime) -> list[uuid.UUID]:
    """Jobs that failed in this window and are still failed: the notifier's sweeper looks among them for a
    "failed" email whose message an outage lost."""
    return list(
        Job.objects.filter(status=Job.Status.FAILED, finished_at__gte=since, finished_at__lt=until).values_list(
            "id", flat=True
        )
    )


def job_is_cancelled(*, job_id) -> bool:
    """True when the job was cancelled or deleted: one query, asked every second by a running conversion."""
    return not Job.objects.filter(id=job_id).exclude(status=Job.Status.CANCELLED).exists()


def job_count_in_progress(*, user) -> int:
    """Jobs of this user waiting for or under conversion: what QUOTA_QUEUED_JOBS_PER_USER limits."""
    return Job.objects.filter(owner=user, status__in=[Job.Status.QUEUED, Job.Status.CONVERTING]).count()


def user_stored_bytes(*, user) -> int:
    """Bytes this user keeps in GridFS, what QUOTA_BYTES_PER_USER limits: each audio source, cover and
    MP3 (and video, with KEEP_SOURCE_VIDEOS) at its stored size, once however many jobs share it (dedup)."""
    jobs = Job.objects.filter(owner=user)
    total = 0
    for file_field, size_field in (
        ("video_file_id", "size"),
        ("source_file_id", "source_size"),
        ("cover_file_id", "cover_size"),
        ("mp3_file_id", "mp3_size"),
    ):
        sizes = dict(jobs.exclude(**{file_field: ""}).values_list(file_field, size_field).distinct())
        total += sum(size or 0 for size in sizes.values())
    return total


def job_conversion_source(*, job: Job) -> tuple[str, str] | None:
    """(GridFS bucket, file id) of what converting this job reads: its audio source, or for a job from
    before the audio source, its uploaded video. None when neither is stored."""
    if job.source_file_id:
        return storage.SOURCES, job.source_file_id
    if job.video_file_id:
        return storage.VIDEOS, job.video_file_id
    return None


# Finished jobs whose files retention deletes: a cancelled one keeps its audio source to be converted again.
RETAINED_STATUSES = (Job.Status.DONE, Job.Status.FAILED, Job.Status.CANCELLED)


def job_expires_at(*, job: Job) -> datetime | None:
    """When retention deletes this job's files; None when they are kept (unfinished job, or RETENTION_DAYS=0)."""
    days = settings.RETENTION_DAYS
    if days <= 0 or job.finished_at is None or job.status not in RETAINED_STATUSES:
        return None
    return job.finished_at + timedelta(days=days)


def user_next_expiry(*, user) -> datetime | None:
    """When retention next frees some of this user's stored bytes (the Retry-After of a storage-quota refusal)."""
    if settings.RETENTION_DAYS <= 0:
        return None
    oldest = (
        Job.objects.filter(owner=user, status__in=RETAINED_STATUSES, finished_at__isnull=False)
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    return oldest + timedelta(days=settings.RETENTION_DAYS) if oldest else None


# --- counts for /metrics


def job_counts_by_status() -> dict[str, int]:
    """How many jobs are in each state now, every state present."""
    counts = dict.fromkeys(Job.Status.values, 0)
    for row in Job.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def metric_counters() -> dict[str, int]:
    """Every cluster-wide counter by name (uploads.services.counters); one never used reads as absent."""
    return dict(MetricCounter.objects.values_list("name", "value"))


# --- share links and the podcast feed (uploads.services.sharing writes them)

# What keeps a share link's token from ever being a feed's, and the other way round (core.tokens).
SHARE_TOKEN_PURPOSE = "share"  # noqa: S105 - a label, not a secret
FEED_TOKEN_PURPOSE = "feed"  # noqa: S105 - a label, not a secret


def job_mp3_title(*, job: Job) -> str:
    """The title the MP3 carries in its ID3 tags: the job's title option, else the source's, else the file name."""
    options = JobOptions.from_stored(job.options)
    return id3_tags(options, source_tags=job.source_tags, filename_title=job.mp3_filename.removesuffix(".mp3"))["title"]


def job_has_cover(*, job: Job) -> bool:
    """Whether the MP3 was made with the job's cover frame (a video's frame, unless the cover option is off)."""
    return bool(job.cover_file_id) and JobOptions.from_stored(job.options).cover


def share_link_state(*, share: ShareLink, now: datetime | None = None) -> str:
    """ "active", "revoked" or "expired"."""
    if share.revoked_at is not None:
        return "revoked"
    return "expired" if share.expires_at <= (now or timezone.now()) else "active"


def share_link_token(*, share: ShareLink) -> str:
    return tokens.derived_token(purpose=SHARE_TOKEN_PURPOSE, nonce=share.nonce)


def share_links_for_job(*, job: Job) -> QuerySet[ShareLink]:
    return ShareLink.objects.filter(job=job).order_by("-created_at")


def share_link_get_for_job(*, job: Job, share_id) -> ShareLink | None:
    parsed = job_id_parse(share_id)
    return ShareLink.objects.filter(job=job, id=parsed).first() if parsed else None


def share_link_by_token(*, token: str) -> ShareLink | None:
    """The link this URL token names, with its job; None for a token no link has (tampered or made up)."""
    if not re.fullmatch(tokens.TOKEN_PATTERN, token or ""):
        return None
    # A deactivated account shares nothing any more.
    return (
        ShareLink.objects.select_related("job")
        .filter(token_digest=tokens.token_digest(token), job__owner__is_active=True)
        .first()
    )


def feed_for_user(*, user) -> PodcastFeed | None:
    """The user's feed while it has an address; None when it was never made or is revoked."""
    return PodcastFeed.objects.filter(owner=user).exclude(nonce="").first()


def feed_token(*, feed: PodcastFeed) -> str:
    return tokens.derived_token(purpose=FEED_TOKEN_PURPOSE, nonce=feed.nonce)


def feed_by_token(*, token: str) -> PodcastFeed | None:
    if not re.fullmatch(tokens.TOKEN_PATTERN, token or ""):
        return None
    return (
        PodcastFeed.objects.filter(token_digest=tokens.token_digest(token), owner__is_active=True)
        .exclude(nonce="")
        .first()
    )


def feed_item_token(*, feed: PodcastFeed, job_id) -> str:
    """The token in the URLs of one job's enclosure, cover and chapters: void once the feed gets a new nonce."""
    return tokens.derived_item_token(purpose=FEED_TOKEN_PURPOSE, nonce=feed.nonce, item=str(job_id))


# A feed lists at most this many MP3s, the newest: apps read the whole document at every poll.
FEED_MAX_ITEMS = 500


def feed_jobs(*, feed: PodcastFeed) -> QuerySet[Job]:
    """The finished MP3s a feed lists, newest first."""
    return (
        Job.objects.filter(owner_id=feed.owner_id, status=Job.Status.DONE)
        .exclude(mp3_file_id="")
        .order_by("-finished_at", "-created_at")[:FEED_MAX_ITEMS]
    )


def feed_job_for_item(*, job_id, item_token: str) -> tuple[Job, PodcastFeed] | None:
    """The done job an enclosure URL names, when its token is right for the owner's current feed."""
    job = job_get(job_id=job_id)
    if job is None or job.status != Job.Status.DONE or not job.mp3_file_id:
        return None
    feed = PodcastFeed.objects.filter(owner_id=job.owner_id, owner__is_active=True).exclude(nonce="").first()
    if feed is None or not tokens.tokens_equal(item_token, feed_item_token(feed=feed, job_id=job.id)):
        return None
    return job, feed
