import uuid

from django.conf import settings
from django.db import models


class EmailDelivery(models.Model):
    """The email of one outcome of one job ("failed"; the "ready" email's state predates this table and
    lives on the Job). One row per (job, outcome), so a job gets at most one email per outcome: a notifier
    claims the row for a while, renews the claim while a slow mail server takes the email, records it,
    or backs off and tries again (the same discipline as uploads.services.notification_claims)."""

    class Outcome(models.TextChoices):
        FAILED = "failed"

    class State(models.TextChoices):
        PENDING = "pending"  # to be sent (now, or after its backoff)
        SENT = "sent"  # the mail server accepted it: never again
        SKIPPED = (
            "skipped"  # nothing to send when it came up: the owner turned emails off, or the job left this outcome
        )
        GIVEN_UP = "given up"  # NOTIFY_MAX_ATTEMPTS tries failed

    job = models.ForeignKey("uploads.Job", on_delete=models.CASCADE, related_name="email_deliveries")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When its message was last published, so the sweeper re-publishes a lost one only now and then.
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)  # the last failure, said for operators
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "outcome"], name="notifications_one_email_per_outcome")]
        indexes = [models.Index(fields=["state", "retry_at"])]

    def __str__(self) -> str:
        return f"{self.outcome} email of job {self.job_id} ({self.state})"


class WebhookEvent(models.TextChoices):
    JOB_DONE = "job.done"
    JOB_FAILED = "job.failed"
    JOB_EXPIRED = "job.expired"


class WebhookEndpoint(models.Model):
    """A URL of a user's that is told when their jobs end, per the Standard Webhooks specification.

    The secret signs every delivery; it is kept as is (the server must sign with it), shown to its owner
    once, and replaced by rotating it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)  # WebhookEvent values
    description = models.CharField(max_length=500, blank=True)
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Deliveries that failed for good in a row, and since when: N of them over at least T hours disable it.
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.url} ({'enabled' if self.enabled else 'disabled'})"


class WebhookDelivery(models.Model):
    """One event for one endpoint: one `webhook-id` (message_id), the same on every attempt and redelivery,
    so a receiver can drop what it already took."""

    class State(models.TextChoices):
        PENDING = "pending"  # to be attempted at next_attempt_at
        DELIVERED = "delivered"
        FAILED = "failed"  # out of attempts, refused (410, another 4xx, a blocked address), or its endpoint disabled

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # No foreign key: the log outlives a deleted job.
    job_id = models.UUIDField()
    event_type = models.CharField(max_length=32, choices=WebhookEvent.choices)
    message_id = models.CharField(max_length=64, unique=True)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Held by the notifier thread sending it; a notifier killed mid-send frees it when this runs out.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "job_id", "event_type"], name="notifications_one_event_per_job")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what came back and how long it took, or why none was sent or received."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts_made")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_snippet = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)
    # The backoff chosen after this attempt (null: no retry follows).
    retry_in_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
