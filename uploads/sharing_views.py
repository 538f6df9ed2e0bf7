"""The pages and files of share links (/s/<token>) and of the private podcast feed (/feeds/<token>.xml),
which answer without sign-in: the token in the URL is the credential. Also the signed-in feed page and the
job page's share forms. Tokens: core.tokens; writes: uploads.services.sharing."""

import hashlib
from datetime import datetime

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from core import storage
from uploads import feed_xml, selectors
from uploads.downloads import mp3_response
from uploads.models import Job
from uploads.services import sharing

GONE = 410
NOT_FOUND = 404
# Say nothing about whether a token ever existed: a made-up or altered token reads like a deleted MP3.
NO_SUCH_LINK = (
    "This link does not work: the MP3 it shared was deleted, or the address is not complete. Ask for a new link."
)
JOB_GONE = "The MP3 this link shared is no longer here: it was deleted. Ask for a new link."
REVOKED = "This share link was turned off by the person who shared it. Ask them for a new link."
STORE_DOWN = "The file store is unreachable right now; try again in a minute."


def _expired_sentence(share) -> str:
    when = timezone.localtime(share.expires_at).strftime("%d %B %Y, %H:%M %Z")
    return f"This share link expired on {when}. Ask the person who shared it for a new link."


def _unavailable(request, status: int, sentence: str) -> HttpResponse:
    response = render(request, "uploads/share_unavailable.html", {"sentence": sentence, "code": status}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _usable_share(token: str):
    """(share, None) for a link that works now, else (None, (status, sentence))."""
    share = selectors.share_link_by_token(token=token)
    if share is None:
        return None, (NOT_FOUND, NO_SUCH_LINK)
    job = share.job
    if job.status != Job.Status.DONE or not job.mp3_file_id:
        return None, (NOT_FOUND, JOB_GONE)
    state = selectors.share_link_state(share=share)
    if state == "revoked":
        return None, (GONE, REVOKED)
    if state == "expired":
        return None, (GONE, _expired_sentence(share))
    return share, None


def _clock(seconds: float | None) -> str:
    """3:07 or 1:02:07, as players show a length."""
    whole = max(0, round(seconds or 0))
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


@require_safe
def share_page(request, token: str):
    share, refusal = _usable_share(token)
    if refusal:
        return _unavailable(request, *refusal)
    job = share.job
    context = {
        "title": selectors.job_mp3_title(job=job),
        "mp3_url": reverse("share-mp3", args=[token]),
        "filename": job.mp3_filename,
        "mp3_size": job.mp3_size,
        "duration": _clock(job.mp3_duration),
        "expires_at": share.expires_at,
    }
    response = render(request, "uploads/share.html", context)
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _text(status: int, sentence: str) -> HttpResponse:
    return HttpResponse(sentence + "\n", status=status, content_type="text/plain; charset=utf-8")


def _stored_mp3(request, job) -> HttpResponse:
    """The MP3 with Range support; for HEAD (apps ask a size before downloading) its headers alone."""
    try:
        response = mp3_response(request, job)
        if request.method == "HEAD" and response.streaming:
            response.streaming_content = iter(())  # keeps Content-Length; reads nothing from the store
        return response
    except storage.StoredFileNotFound:
        return _text(NOT_FOUND, JOB_GONE)
    except storage.StorageError:
        return _text(503, STORE_DOWN)


@require_safe
def share_mp3(request, token: str):
    share, refusal = _usable_share(token)
    if refusal:
        return _text(*refusal)
    response = _stored_mp3(request, share.job)
    response["Cache-Control"] = "no-store"  # a revoked link must not keep playing from a cache
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- the podcast feed ------------------------------------------------------------------------------------

NO_FEED = (
    "No feed has this address: it was revoked or replaced by a new one. Copy the current address from your feed page."
)
NO_ITEM = "Nothing is here: the feed's address changed, or this MP3 was deleted."


def _absolute(request, name: str, *args) -> str:
    return request.build_absolute_uri(reverse(name, args=args))


def _feed_item(request, feed, job: Job) -> feed_xml.FeedItem:
    item_token = selectors.feed_item_token(feed=feed, job_id=job.id)
    has_chapters = bool(job.mp3_chapters)
    return feed_xml.FeedItem(
        guid=f"urn:uuid:{job.id}",
        title=selectors.job_mp3_title(job=job),
        description=f"Converted from {job.original_filename} by videomp3.",
        published=job.finished_at or job.created_at,
        mp3_url=_absolute(request, "feed-item-mp3", job.id, item_token),
        mp3_size=job.mp3_size or 0,
        duration=job.mp3_duration,
        image_url=_absolute(request, "feed-item-cover", job.id, item_token)
        if selectors.job_has_cover(job=job)
        else None,
        chapters_url=_absolute(request, "feed-item-chapters", job.id, item_token) if has_chapters else None,
    )


@require_safe
def feed_document(request, token: str):
    feed = selectors.feed_by_token(token=token)
    if feed is None:
        return _text(NOT_FOUND, NO_FEED)
    jobs = list(selectors.feed_jobs(feed=feed))
    changed: datetime = max([feed.created_at, *(job.finished_at for job in jobs if job.finished_at)])
    body = feed_xml.feed_document(
        title="videomp3: your MP3s",
        description="Your finished MP3s from videomp3, newest first. This feed is private: its address is its password.",
        site_url=request.build_absolute_uri("/"),
        self_url=_absolute(request, "feed-document", token),
        built=changed,
        items=[_feed_item(request, feed, job) for job in jobs],
    )
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    last_modified = int(changed.timestamp())
    headers = {
        "ETag": etag,
        "Last-Modified": http_date(last_modified),
        "Cache-Control": "private, no-cache",
        "X-Robots-Tag": "noindex, nofollow",
    }
    unchanged = get_conditional_response(request, etag=etag, last_modified=last_modified)
    if unchanged is not None:
        for name, value in headers.items():
            unchanged[name] = value
        return unchanged
    response = HttpResponse(body, content_type="application/rss+xml; charset=utf-8")
    for name, value in headers.items():
        response[name] = value
    return response


@require_safe
def feed_item_mp3(request, job_id: str, item_token: str):
    found = selectors.feed_job_for_item(job_id=job_id, item_token=item_token)
    if found is None:
        return _text(NOT_FOUND, NO_ITEM)
    return _stored_mp3(request, found[0])


@require_safe
def feed_item_cover(request, job_id: str, item_token: str):
    found = selectors.feed_job_for_item(job_id=job_id, item_token=item_token)
    if found is None or not selectors.job_has_cover(job=found[0]):
        return _text(NOT_FOUND, NO_ITEM)
    try:
        stored = storage.open_file(storage.SOURCES, found[0].cover_file_id)
        with stored:
            picture = stored.read()  # a JPEG frame: tens of KB
    except storage.StoredFileNotFound:
        return _text(NOT_FOUND, NO_ITEM)
    except storage.StorageError:
        return _text(503, STORE_DOWN)
    response = HttpResponse(picture, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_safe
def feed_item_chapters(request, job_id: str, item_token: str):
    found = selectors.feed_job_for_item(job_id=job_id, item_token=item_token)
    if found is None or not found[0].mp3_chapters:
        return _text(NOT_FOUND, NO_ITEM)
    response = HttpResponse(feed_xml.chapters_document(found[0].mp3_chapters), content_type=feed_xml.CHAPTERS_TYPE)
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _qr_svg(url: str) -> str:
    """The address as a QR code, an SVG drawn on the server (no script, no image request)."""
    return segno.make(url, error="m").svg_inline(scale=4, dark="#111827", light="#ffffff", svgclass="qr-code")


@login_required
@require_http_methods(["GET", "POST"])
def feed_page(request):
    """The signed-in user's feed: its address with a copy button and a QR code; make, renew or revoke it."""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "renew":
            had_one = selectors.feed_for_user(user=request.user) is not None
            sharing.feed_renew(owner=request.user)
            messages.success(
                request,
                "Your feed has a new address; the old one and its episodes stopped working. Add the new one to your podcast app."
                if had_one
                else "Your feed is ready: add its address to your podcast app.",
            )
        elif action == "revoke":
            if sharing.feed_revoke(owner=request.user):
                messages.success(request, "Your feed was revoked: its address and its episodes no longer work.")
        return redirect("feed-page")
    feed = selectors.feed_for_user(user=request.user)
    url = _absolute(request, "feed-document", selectors.feed_token(feed=feed)) if feed else None
    context = {"feed": feed, "feed_url": url, "qr_svg": _qr_svg(url) if url else None}
    response = render(request, "uploads/feed.html", context)
    response["Cache-Control"] = "no-store"
    return response


# --- the job page's share links (the API has the same: uploads.sharing_apis) --------------------------------


def share_links_listing(request, job: Job) -> list[dict]:
    """The job's links as its page shows them: each with its state, and its address while it works."""
    now = timezone.now()
    listing = []
    for share in selectors.share_links_for_job(job=job):
        state = selectors.share_link_state(share=share, now=now)
        token = selectors.share_link_token(share=share) if state == "active" else None
        listing.append(
            {
                "id": share.id,
                "state": state,
                "created_at": share.created_at,
                "expires_at": share.expires_at,
                "revoked_at": share.revoked_at,
                "url": _absolute(request, "share-page", token) if token else None,
            }
        )
    return listing


def _own_job(request, job_id) -> Job:
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    if job is None:
        raise Http404("No such job.")
    return job


@login_required
@require_POST
def share_create(request, job_id):
    job = _own_job(request, job_id)
    try:
        hours = sharing.share_hours_check(request.POST.get("hours"))
        sharing.share_link_create(job=job, hours=hours)
    except (sharing.ShareHoursInvalid, sharing.NothingToShare) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The share link is ready: copy it below and send it on.")
    return redirect(reverse("job-page", args=[job.id]) + "#shares")


@login_required
@require_POST
def share_revoke(request, job_id, share_id):
    job = _own_job(request, job_id)
    share = selectors.share_link_get_for_job(job=job, share_id=share_id)
    if share is None:
        raise Http404("No such share link.")
    sharing.share_link_revoke(share=share)
    messages.success(request, "The share link was turned off: it no longer plays or downloads.")
    return redirect(reverse("job-page", args=[job.id]) + "#shares")


SHARE_HOUR_CHOICES = [(1, "1 hour"), (24, "1 day"), (72, "3 days"), (168, "1 week"), (720, "30 days")]


def share_hour_choices() -> list[tuple[int, str, bool]]:
    """(hours, label, is the default) the job page offers, within SHARE_LINK_MAX_HOURS, the default among them."""
    default = settings.SHARE_LINK_HOURS
    hours = {value: label for value, label in SHARE_HOUR_CHOICES if value <= settings.SHARE_LINK_MAX_HOURS}
    hours.setdefault(default, f"{default} hours")
    return [(value, label, value == default) for value, label in sorted(hours.items())]
