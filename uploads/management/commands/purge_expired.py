from django.conf import settings
from django.core.management.base import BaseCommand

from uploads.services.housekeeping import jobs_expire


class Command(BaseCommand):
    help = (
        "Retention: delete the MP3s (and any kept videos) of jobs that finished more than RETENTION_DAYS "
        "ago; each job stays, marked expired with a sentence. Every converter also does this as housekeeping."
    )

    def handle(self, *args, **options):
        if settings.RETENTION_DAYS <= 0:
            self.stdout.write("RETENTION_DAYS is 0: finished files are kept forever; nothing to do.")
            return
        counts = jobs_expire()
        self.stdout.write(
            f"expired {counts['expired']} job(s) older than {settings.RETENTION_DAYS} day(s); "
            f"deleted the files of {counts['files_deleted']}."
        )
