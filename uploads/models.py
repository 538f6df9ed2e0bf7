import uuid

from django.conf import settings
from django.db import models


class Job(models.Model):
    """One uploaded video and the MP3 made from it. The row is the source of truth for its state."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        CONVERTING = "converting"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)

    # What was uploaded. The filename is display text only: never used to build a path or a header.
    original_filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    content_sha256 = models.CharField(max_length=64, blank=True)
    container = models.CharField(max_length=64, blank=True)
    audio_codec = models.CharField(max_length=32, blank=True)
    video_codec = models.CharField(max_length=32, blank=True)
    duration = models.FloatField(null=True, blank=True)
    # The uploaded video itself: stored only with KEEP_SOURCE_VIDEOS (and by jobs from before the audio source).
    video_file_id = models.CharField(max_length=64, blank=True)
    # What a conversion reads, extracted by the web role at upload: every audio track stream-copied into
    # one small seekable file (or, when no container can carry the audio as is, the upload itself), and
    # the cover frame as a JPEG. Kept until the job is deleted or expires, so it can be converted again;
    # shared with the jobs that dedup gave the same MP3, and deleted with the last job that names it.
    source_file_id = models.CharField(max_length=64, blank=True, db_index=True)
    source_size = models.BigIntegerField(null=True, blank=True)
    cover_file_id = models.CharField(max_length=64, blank=True, db_index=True)
    cover_size = models.BigIntegerField(null=True, blank=True)
    # From the upload-time probe, so options can be checked and built without opening the file again:
    # each audio stream (codec, channels, sample_rate, language, default) and the container's tags.
    audio_streams = models.JSONField(default=list, blank=True)
    source_tags = models.JSONField(default=dict, blank=True)

    # What was asked for: uploads.options.JobOptions.canonical() (every field, defaults filled in),
    # so equal requests store equal JSON. {} (jobs from before options, POST /upload) means the defaults.
    options = models.JSONField(default=dict, blank=True)
    # sha256 of the canonical options: with owner and content_sha256, what makes two uploads the same
    # conversion (dedup). Blank for jobs from before dedup, which are never reused.
    options_key = models.CharField(max_length=64, blank=True)
    # Set when this job got the MP3 of an earlier job of the same user without converting; the MP3
    # file is then shared, and deleted only with the last job that names it.
    reused_from = models.UUIDField(null=True, blank=True)
    # loudnorm's measurement of the input (input_i LUFS, input_tp dBTP, ...) when normalizing.
    input_loudness = models.JSONField(null=True, blank=True)

    # What was produced.
    mp3_file_id = models.CharField(max_length=64, blank=True, db_index=True)
    mp3_size = models.BigIntegerField(null=True, blank=True)
    mp3_duration = models.FloatField(null=True, blank=True)
    # The MP3's chapters as written (start and end in seconds, title), read back by the converter, so the
    # podcast feed can publish them without opening the file; null for jobs from before they were recorded.
    mp3_chapters = models.JSONField(null=True, blank=True)

    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # attempts: conversions started; recoveries: attempts whose worker died (its lease ran out);
    # transient_failures: attempts that met an unreachable store. Each has its own limit.
    attempts = models.PositiveIntegerField(default=0)
    recoveries = models.PositiveIntegerField(default=0)
    transient_failures = models.PositiveIntegerField(default=0)

    # The converter that claimed the job holds a lease it keeps renewing; once it runs out the
    # attempt is known dead and the sweeper queues the job again.
    lease_owner = models.CharField(max_length=32, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the `video` message was last confirmed by the broker (null: not yet, e.g. broker down).
    published_at = models.DateTimeField(null=True, blank=True)
    # A queued job waits until then before it is published again (backoff after a transient failure).
    retry_at = models.DateTimeField(null=True, blank=True)
    # The notifier sending the email holds this short claim, so two notifiers never both send.
    notify_claimed_until = models.DateTimeField(null=True, blank=True)
    # When the `mp3` message was last published, so the sweeper re-publishes a lost one only now and then.
    mp3_published_at = models.DateTimeField(null=True, blank=True)
    # Emails that could not be sent: how many tries failed, when the next is due (backoff; the sweeper
    # publishes it then), and the last failure, said for operators.
    notify_attempts = models.PositiveIntegerField(default=0)
    notify_retry_at = models.DateTimeField(null=True, blank=True)
    notify_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["owner", "content_sha256", "options_key"], name="uploads_job_dedup"),
        ]

    def __str__(self) -> str:
        return f"{self.original_filename} ({self.status})"

    @property
    def mp3_filename(self) -> str:
        stem = self.original_filename.rsplit(".", 1)[0] if "." in self.original_filename else self.original_filename
        return f"{stem or 'audio'}.mp3"


class MetricCounter(models.Model):
    """A cluster-wide count that only grows (the `_total` series of /metrics): conversions, failures,
    bytes uploaded and produced, the conversion-time histogram. Each is added to in the transaction of the
    change it counts (uploads.services.counters), so deleting or expiring a job never lowers it, and every
    web pod reads the same row rather than adding up its own."""

    name = models.CharField(primary_key=True, max_length=64)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class ShareLink(models.Model):
    """A link anyone may use to play and download one job's MP3 until it expires or its owner revokes it.

    The URL's token is derived from `nonce` (core.tokens) and only its SHA-256 is looked up, so the table
    alone gives no working link. The link goes with its job (deleted, or its files expired: then 404)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="share_links")
    nonce = models.CharField(max_length=64)
    token_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share of {self.job_id} until {self.expires_at:%Y-%m-%d %H:%M}"


class PodcastFeed(models.Model):
    """A user's private podcast feed of their finished MP3s. The token in its URL is the credential:
    derived from `nonce` (core.tokens), looked up by its SHA-256. Revoking clears both, which also voids
    every enclosure, cover and chapters URL the feed handed out (their tokens are derived from the nonce)."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="podcast_feed")
    nonce = models.CharField(max_length=64, blank=True)
    token_digest = models.CharField(max_length=64, blank=True, db_index=True)
    # When the current address was made: the feed's Last-Modified never goes back before it.
    created_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"feed of {self.owner_id} ({'active' if self.nonce else 'revoked'})"
