import hashlib
import json
from datetime import datetime

from django.urls import reverse
from rest_framework import serializers

from uploads import selectors
from uploads.models import Job


class JobSerializer(serializers.ModelSerializer):
    filename = serializers.CharField(source="original_filename")
    links = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField(
        help_text="A fingerprint of this JSON: it changes whenever any other field does (see ?known= on the list)."
    )
    expires_at = serializers.SerializerMethodField(
        help_text="When retention deletes the job's files (RETENTION_DAYS after it finished); null when they are kept."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "progress",
            "error",
            "filename",
            "size",
            "container",
            "audio_codec",
            "video_codec",
            "duration",
            "audio_streams",
            "options",
            "input_loudness",
            "reused_from",
            "mp3_file_id",
            "mp3_size",
            "mp3_duration",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "notified_at",
            "expires_at",
            "links",
            "version",
        ]
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        data = super().to_representation(job)
        data["version"] = job_version(data)
        return data

    def get_version(self, job: Job) -> str:
        return ""  # filled in by to_representation, once the rest of the JSON exists

    def get_expires_at(self, job: Job) -> datetime | None:
        expires_at = selectors.job_expires_at(job=job)
        return serializers.DateTimeField().to_representation(expires_at) if expires_at else None

    def get_links(self, job: Job) -> dict[str, str | None]:
        request = self.context.get("request")

        def absolute(path: str) -> str:
            return request.build_absolute_uri(path) if request else path

        return {
            "self": absolute(reverse("job-detail", args=[job.id])),
            "mp3": absolute(reverse("job-mp3", args=[job.id])) if job.status == Job.Status.DONE else None,
            "page": absolute(reverse("job-page", args=[job.id])),
        }


class OutputOptionsSerializer(serializers.Serializer):
    """The output option fields, as the upload form names them (the schema's description; parsing is
    uploads.options.parse_options). Each is optional; a preset is applied first, the fields override it."""

    preset = serializers.CharField(required=False, help_text="A named preset (GET /api/presets/).")
    options = serializers.CharField(
        required=False, help_text='All options as one JSON object, e.g. {"bitrate": 128, "channels": "mono"}.'
    )
    bitrate = serializers.IntegerField(required=False, help_text="Constant bitrate in kb/s, e.g. 128.")
    vbr_quality = serializers.IntegerField(required=False, help_text="VBR quality, 0 (best) to 9 (smallest).")
    sample_rate = serializers.CharField(required=False, help_text="source, 22050, 32000, 44100 or 48000.")
    channels = serializers.CharField(required=False, help_text="source, mono or stereo.")
    start = serializers.CharField(required=False, help_text="Start at: seconds or HH:MM:SS.mmm.")
    end = serializers.CharField(required=False, help_text="End at: seconds or HH:MM:SS.mmm.")
    audio_track = serializers.IntegerField(required=False, help_text="Audio track number, 0 for the first.")
    audio_language = serializers.CharField(required=False, help_text="Track language, ISO 639 as tagged: eng.")
    normalize = serializers.BooleanField(required=False, help_text="Normalize loudness.")
    loudness_target = serializers.FloatField(required=False, help_text="Target loudness in LUFS, e.g. -16.")
    title = serializers.CharField(required=False)
    artist = serializers.CharField(required=False)
    album = serializers.CharField(required=False)
    date = serializers.CharField(required=False)
    cover = serializers.BooleanField(required=False, help_text="Embed a cover frame (videos).")
    cover_time = serializers.CharField(required=False, help_text="Cover frame at: seconds or HH:MM:SS.mmm.")
    chapters = serializers.BooleanField(required=False, help_text="Keep the source's chapters.")
    stream_copy = serializers.BooleanField(required=False, help_text="Copy MP3 audio as it is when possible.")


class UploadSerializer(OutputOptionsSerializer):
    file = serializers.FileField(help_text="The video (or audio) file; send the option fields before it.")


class UploadCheckSerializer(OutputOptionsSerializer):
    name = serializers.CharField(required=False, help_text="The file's name.")
    size = serializers.IntegerField(help_text="The file's size in bytes.")
    head = serializers.FileField(help_text="The file's first bytes, at most 1 MiB.")
    tail = serializers.FileField(required=False, help_text="The file's last bytes, at most 1 MiB.")


class PresetSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    options = serializers.DictField(help_text="The option fields this preset sets; the rest keep their defaults.")


def job_version(data: dict) -> str:
    """A short fingerprint of a job's JSON: equal when nothing a client shows has changed. The page's poll
    sends the versions it holds (GET /api/jobs/?known=...) and gets back only the jobs that differ."""
    canonical = json.dumps({key: value for key, value in data.items() if key != "version"}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]
