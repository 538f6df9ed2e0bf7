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
