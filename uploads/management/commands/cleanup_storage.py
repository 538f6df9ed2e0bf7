from django.conf import settings
from django.core.management.base import BaseCommand

from uploads.services.housekeeping import storage_cleanup


class Command(BaseCommand):
    help = (
        "Delete stored files no job needs: videos, audio sources, covers and MP3s whose job is gone, and "
        "chunks left by interrupted writes, and resumable uploads past their expiry (never before it). Files newer than --older-than seconds are kept (they may be in use). "
        "Every converter also runs this every STORAGE_CLEANUP_INTERVAL_SECONDS."
    )

    def add_arguments(self, parser):
        default = settings.STORAGE_CLEANUP_MIN_AGE_SECONDS
        parser.add_argument("--older-than", type=int, default=default, help=f"seconds (default {default})")

    def handle(self, *args, older_than: int, **options):
        counts = storage_cleanup(older_than_seconds=older_than)
        self.stdout.write(
            f"removed {counts['videos']} video(s), {counts['sources']} audio source(s) or cover(s), "
            f"{counts['mp3s']} MP3(s), {counts['expired_uploads']} expired resumable upload(s) and the chunks of "
            f"{counts['orphan_chunks']} interrupted write(s)."
        )
