"""Webhooks per the Standard Webhooks specification (standardwebhooks.com): endpoints, events, signed
deliveries with retries, and the dispatcher the notifier runs beside its email loop.

An event is a WebhookDelivery row per subscribed endpoint, written when the notifier handles the job's
message (before its email, and idempotently: one per endpoint, job and event). The dispatcher claims due
rows and sends each from a pool of WEBHOOK_WORKERS threads, so a slow receiver holds up neither another
endpoint's delivery nor an email. Every attempt is recorded; retries follow core.backoff.retry_delay.
A notifier killed mid-send leaves its claim to run out, and the delivery is sent again with the same
webhook-id: that duplicate is the one a receiver drops by remembering webhook-ids.
"""

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, close_old_connections, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from core.backoff import retry_delay
from core.database_now import DatabaseNow, database_now_plus
from notifications import webhook_http
from notifications.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)

Delivery = WebhookDelivery.State
EVENT_FOR_STATUS = {
    "done": WebhookEvent.JOB_DONE,
    "failed": WebhookEvent.JOB_FAILED,
    "expired": WebhookEvent.JOB_EXPIRED,
}
SECRET_PREFIX = "whsec_"  # noqa: S105 - the specification's prefix, not a secret

# Set when a delivery is written, so the dispatcher in this process sends it now rather than at its next poll.
wake = threading.Event()


# --- endpoints ---------------------------------------------------------------------------------------


def secret_generate() -> str:
    """A signing secret in the specification's form: whsec_ and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_url_check(url: str) -> str:
    """The URL as stored, or ValidationError with a sentence. A host that is a non-public address is
    refused here already; names are resolved and checked at each delivery."""
    if len(url) > 2000:
        raise ValidationError({"url": ["This URL is longer than 2000 characters; use a shorter one."]})
    try:
        parsed = webhook_http.urllib3.util.parse_url(url)
    except (webhook_http.LocationParseError, ValueError):
        raise ValidationError({"url": ["This URL cannot be parsed; give a full http:// or https:// URL."]}) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError({"url": ["Give a full http:// or https:// URL with a host name."]})
    literal = webhook_http.literal_address(parsed.host)
    allow = settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES
    if literal and not webhook_http.address_allowed(literal, allow_private=allow):
        raise ValidationError(
            {"url": [f"{literal} is a loopback, private or reserved address; webhooks only go to public addresses."]}
        )
    if parsed.auth:
        raise ValidationError({"url": ["Put no user name or password in the URL; check the signature instead."]})
    return url


def endpoint_create(*, owner, url: str, events: list[str], description: str = "") -> WebhookEndpoint:
    endpoint_url_check(url)
    return WebhookEndpoint.objects.create(
        owner=owner, url=url, events=sorted(set(events)), description=description, secret=secret_generate()
    )


def endpoint_update(*, endpoint: WebhookEndpoint, **fields) -> WebhookEndpoint:
    """Change url, events, description; enabled=True enables a disabled endpoint again (its failures forgotten)."""
    if "url" in fields:
        endpoint_url_check(fields["url"])
    if "events" in fields:
        fields["events"] = sorted(set(fields["events"]))
    if fields.get("enabled") and not endpoint.enabled:
        fields.update(disabled_reason="", disabled_at=None, consecutive_failures=0, failing_since=None)
    elif fields.get("enabled") is False and endpoint.enabled:
        fields.update(disabled_reason="Disabled by its owner.", disabled_at=timezone.now())
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save()
    return endpoint


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """A new secret at once; deliveries from now on are signed with it only."""
    endpoint.secret = secret_generate()
    endpoint.save(update_fields=["secret"])
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a delivery again now, with its webhook-id; its endpoint must be enabled."""
    if not delivery.endpoint.enabled:
        raise ValidationError("This endpoint is disabled; enable it first, then redeliver.")
    WebhookDelivery.objects.filter(id=delivery.id).exclude(
        state=Delivery.PENDING, claimed_until__gt=DatabaseNow()
    ).update(state=Delivery.PENDING, next_attempt_at=DatabaseNow(), finished_at=None, claimed_until=None)
    wake.set()
    delivery.refresh_from_db()
    return delivery


# --- events --------------------------------------------------------------------------------------------


def job_payload(job, event_type: str, *, job_url: str) -> dict:
    """The event's body: the specification's type, timestamp and data."""
    return {
        "type": event_type,
        "timestamp": timezone.now().isoformat().replace("+00:00", "Z"),
        "data": {
            "job_id": str(job.id),
            "status": job.status,
            "original_filename": job.original_filename,
            "mp3_file_id": job.mp3_file_id or None,
            "mp3_size": job.mp3_size,
            "mp3_duration": job.mp3_duration,
            "error": job.error or None,
            "url": job_url,
        },
    }


def job_events_record(*, job, job_url: str) -> int:
    """One delivery per enabled endpoint of the owner that wants this job's outcome; idempotent (a
    redelivered message, or an outcome reached again after a retry, adds none). The deliveries written."""
    event_type = EVENT_FOR_STATUS.get(job.status)
    if event_type is None:
        return 0
    written = 0
    for endpoint in WebhookEndpoint.objects.filter(owner_id=job.owner_id, enabled=True):
        if event_type not in endpoint.events:
            continue
        if WebhookDelivery.objects.filter(endpoint=endpoint, job_id=job.id, event_type=event_type).exists():
            continue
        try:
            with transaction.atomic():
                WebhookDelivery.objects.create(
                    endpoint=endpoint,
                    job_id=job.id,
                    event_type=event_type,
                    message_id=f"msg_{uuid.uuid4().hex}",
                    payload=job_payload(job, event_type, job_url=job_url),
                    next_attempt_at=DatabaseNow(),  # due dates are set and judged by the database's clock
                )
            written += 1
        except IntegrityError:  # another notifier wrote it meanwhile
            continue
    if written:
        wake.set()
    return written


# --- sending -------------------------------------------------------------------------------------------


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """webhook-signature: v1, and base64 of HMAC-SHA256 over "id.timestamp.body" with the secret's bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _claim_seconds() -> float:
    # Longer than one attempt can take (connect and read, each bounded), so a live sender never loses it.
    return 3 * settings.WEBHOOK_TIMEOUT_SECONDS + 5


def _due() -> Q:
    return Q(state=Delivery.PENDING, next_attempt_at__lte=DatabaseNow(), endpoint__enabled=True) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=DatabaseNow())
    )


def deliveries_claim(*, limit: int) -> list[str]:
    """Claim up to `limit` due deliveries for this process; their ids."""
    claimed = []
    for delivery_id in (
        WebhookDelivery.objects.filter(_due()).order_by("next_attempt_at").values_list("id", flat=True)[: limit * 2]
    ):
        if len(claimed) >= limit:
            break
        if WebhookDelivery.objects.filter(_due(), id=delivery_id).update(
            claimed_until=database_now_plus(_claim_seconds())
        ):
            claimed.append(delivery_id)
    return claimed


def _retryable(answer: webhook_http.Answer) -> bool:
    """Errors, timeouts, 5xx, 408 and 429 are worth another try; a blocked address or another 4xx is not."""
    if answer.blocked:
        return False
    return answer.status is None or answer.status >= 500 or answer.status in (408, 429)


def delivery_attempt(*, delivery_id) -> str:
    """One attempt of a claimed delivery: send, record, and decide what follows. The delivery's state after."""
    delivery = WebhookDelivery.objects.select_related("endpoint", "endpoint__owner").get(id=delivery_id)
    endpoint = delivery.endpoint
    if delivery.state != Delivery.PENDING:
        return delivery.state
    if not endpoint.enabled:
        _finish(delivery, Delivery.FAILED)
        return Delivery.FAILED
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "videomp3-webhooks",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(endpoint.secret, delivery.message_id, timestamp, body),
    }
    started = timezone.now()
    answer = webhook_http.post(
        endpoint.url,
        body,
        headers,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES,
    )
    number = delivery.attempts + 1
    succeeded = answer.status is not None and 200 <= answer.status < 300
    retry_in = None
    if not succeeded and answer.status != 410 and _retryable(answer) and number < settings.WEBHOOK_MAX_ATTEMPTS:
        retry_in = retry_delay(number, base=settings.WEBHOOK_RETRY_BASE_SECONDS)
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started,
        status_code=answer.status,
        latency_ms=answer.latency_ms,
        response_snippet=answer.snippet,
        error=answer.error[:500],
        retry_in_seconds=retry_in,
    )
    WebhookDelivery.objects.filter(id=delivery.id).update(attempts=number)
    if succeeded:
        _finish(delivery, Delivery.DELIVERED)
        WebhookEndpoint.objects.filter(id=endpoint.id).update(consecutive_failures=0, failing_since=None)
        return Delivery.DELIVERED
    if answer.status == 410:
        _finish(delivery, Delivery.FAILED)
        endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone, which asks for no more deliveries.")
        return Delivery.FAILED
    if retry_in is not None:
        WebhookDelivery.objects.filter(id=delivery.id, state=Delivery.PENDING).update(
            next_attempt_at=database_now_plus(retry_in), claimed_until=None
        )
        logger.info(
            "webhook %s to %s: attempt %d failed (%s); next in %.1f s",
            delivery.message_id,
            endpoint.url,
            number,
            answer.status or answer.error,
            retry_in,
        )
        return Delivery.PENDING
    _finish(delivery, Delivery.FAILED)
    _endpoint_failure(endpoint)
    logger.warning(
        "webhook %s to %s failed for good after %d attempts: %s",
        delivery.message_id,
        endpoint.url,
        number,
        answer.status or answer.error,
    )
    return Delivery.FAILED


def _finish(delivery: WebhookDelivery, state: str) -> None:
    WebhookDelivery.objects.filter(id=delivery.id).update(
        state=state, finished_at=timezone.now(), claimed_until=None, next_attempt_at=None
    )


def _endpoint_failure(endpoint: WebhookEndpoint) -> None:
    """A delivery failed for good: one more in a row; WEBHOOK_DISABLE_AFTER_FAILURES of them over at least
    WEBHOOK_DISABLE_AFTER_HOURS disable the endpoint."""
    now = timezone.now()
    WebhookEndpoint.objects.filter(id=endpoint.id, failing_since__isnull=True).update(failing_since=now)
    WebhookEndpoint.objects.filter(id=endpoint.id).update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint.refresh_from_db()
    span = timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    if (
        endpoint.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
        and now - endpoint.failing_since >= span
    ):
        endpoint_disable(
            endpoint=endpoint,
            reason=f"{endpoint.consecutive_failures} deliveries in a row failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC.",
        )


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> None:
    """Disable the endpoint (its pending deliveries wait, failed) and email its owner, once."""
    if not WebhookEndpoint.objects.filter(id=endpoint.id, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=timezone.now()
    ):
        return
    WebhookDelivery.objects.filter(endpoint_id=endpoint.id, state=Delivery.PENDING).exclude(
        claimed_until__gt=DatabaseNow()
    ).update(state=Delivery.FAILED, finished_at=timezone.now(), next_attempt_at=None)
    logger.warning("webhook endpoint %s (%s) disabled: %s", endpoint.id, endpoint.url, reason)
    page = settings.PUBLIC_URL + "/accounts/webhooks/"
    try:
        send_mail(
            subject="A webhook endpoint of yours was disabled",
            message=(
                f"Hello,\n\nvideomp3 stopped sending webhooks to {endpoint.url}:\n{reason}\n\n"
                f"Fix the receiver, then enable the endpoint again and redeliver what it missed:\n{page}\n\n— videomp3\n"
            ),
            from_email=None,
            recipient_list=[endpoint.owner.email],
        )
    except Exception:  # noqa: BLE001 - the endpoint stays disabled and its page says why; the log says the rest
        logger.warning(
            "could not email %s that endpoint %s was disabled", endpoint.owner.email, endpoint.id, exc_info=True
        )


class Dispatcher:
    """Claims due deliveries and sends each on a pool thread, until `stop` is set."""

    def __init__(self, *, stop: threading.Event, workers: int | None = None):
        self.stop = stop
        self.workers = workers or settings.WEBHOOK_WORKERS
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="webhook")
        self.in_flight = threading.Semaphore(self.workers)
        self.thread = threading.Thread(target=self._run, name="webhook dispatcher", daemon=True)

    def start(self) -> "Dispatcher":
        self.thread.start()
        return self

    def _send(self, delivery_id) -> None:
        close_old_connections()
        try:
            delivery_attempt(delivery_id=delivery_id)
        except Exception:  # noqa: BLE001 - its claim runs out and it is tried again
            logger.exception("webhook delivery %s failed unexpectedly", delivery_id)
        finally:
            connections.close_all()
            self.in_flight.release()
            wake.set()

    def _run(self) -> None:
        while not self.stop.is_set():
            wake.clear()
            free = 0
            while self.in_flight.acquire(blocking=False):
                free += 1
            claimed = []
            try:
                claimed = deliveries_claim(limit=free) if free else []
            except Exception:  # noqa: BLE001 - the database away for a moment: try again at the next poll
                logger.warning("webhook dispatcher could not claim deliveries", exc_info=True)
            finally:
                connections.close_all()
            for delivery_id in claimed:
                self.pool.submit(self._send, delivery_id)
            for _ in range(free - len(claimed)):
                self.in_flight.release()
            wake.wait(settings.WEBHOOK_POLL_SECONDS)
        self.pool.shutdown(wait=True, cancel_futures=True)
