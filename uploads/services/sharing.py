"""Writes for the ways an MP3 leaves the signed-in page: share links of one job, and each user's private
podcast feed. Tokens are derived from a random nonce and stored only as a digest (core.tokens)."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import tokens
from uploads.models import Job, PodcastFeed, ShareLink
from uploads.selectors import FEED_TOKEN_PURPOSE, SHARE_TOKEN_PURPOSE


class NothingToShare(Exception):
    """The job has no MP3 to share (HTTP 409); str() says why and what to do."""


class ShareHoursInvalid(ValueError):
    """The asked lifetime is outside 1 .. SHARE_LINK_MAX_HOURS; str() says what to send."""


def share_hours_check(hours) -> int:
    """The lifetime to give a new link: the server default when none is asked, else the asked whole hours."""
    if hours is None or hours == "":
        return settings.SHARE_LINK_HOURS
    longest = settings.SHARE_LINK_MAX_HOURS
    try:
        value = int(str(hours).strip())
    except ValueError:
        value = 0
    if not 1 <= value <= longest:
        raise ShareHoursInvalid(
            f"A share link lasts from 1 to {longest} hours; send expires_in_hours as a whole number in that range."
        )
    return value


def share_link_create(*, job: Job, hours: int) -> tuple[ShareLink, str]:
    """A new link to the job's MP3, working for `hours`; returns it with its token."""
    if job.status != Job.Status.DONE or not job.mp3_file_id:
        if job.status == Job.Status.EXPIRED:
            raise NothingToShare(
                "The MP3 of this job was deleted, so there is nothing to share; convert the video again."
            )
        raise NothingToShare(f"Only a finished MP3 can be shared: this job is {job.status}. Wait until it is done.")
    nonce = tokens.new_nonce()
    token = tokens.derived_token(purpose=SHARE_TOKEN_PURPOSE, nonce=nonce)
    share = ShareLink.objects.create(
        job=job,
        nonce=nonce,
        token_digest=tokens.token_digest(token),
        expires_at=timezone.now() + timedelta(hours=hours),
    )
    return share, token


def share_link_revoke(*, share: ShareLink) -> ShareLink:
    """The link stops working at once; it stays listed, as revoked. Revoking twice keeps the first time."""
    ShareLink.objects.filter(id=share.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
    share.refresh_from_db()
    return share


def feed_renew(*, owner) -> tuple[PodcastFeed, str]:
    """Give the user's feed a new address (creating the feed the first time); the old address, and every
    enclosure URL handed out under it, stops working. Returns the feed and its token."""
    nonce = tokens.new_nonce()
    token = tokens.derived_token(purpose=FEED_TOKEN_PURPOSE, nonce=nonce)
    with transaction.atomic():
        feed, _ = PodcastFeed.objects.select_for_update().get_or_create(owner=owner)
        feed.nonce = nonce
        feed.token_digest = tokens.token_digest(token)
        feed.created_at = timezone.now()
        feed.save(update_fields=["nonce", "token_digest", "created_at"])
    return feed, token


def feed_revoke(*, owner) -> bool:
    """The feed's address and its enclosures stop working; True when there was one to revoke."""
    return bool(
        PodcastFeed.objects.filter(owner=owner).exclude(nonce="").update(nonce="", token_digest="", created_at=None)
    )
