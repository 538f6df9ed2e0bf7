from django.core.management.base import BaseCommand

from uploads.services import storage_cleanup


class Command(BaseCommand):
    help = (
        "Delete stored files no job needs: videos and MP3s whose job is gone, and chunks left by "
        "interrupted writes. Files newer than --older-than seconds are kept (they may be in use)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, default=3600, help="seconds (default 3600)")

    def handle(self, *args, older_than: int, **options):
        counts = storage_cleanup(older_than_seconds=older_than)
        self.stdout.write(
            f"removed {counts['videos']} video(s), {counts['mp3s']} MP3(s) and the chunks of "
            f"{counts['orphan_chunks']} interrupted write(s)."
        )
