from django.core.management.base import BaseCommand

from uploads.services.recovery import jobs_sweep


class Command(BaseCommand):
    help = (
        "Recover jobs left behind by a crash or a broker outage: queue again the jobs whose converter died, "
        "publish queued jobs whose message was never confirmed or got lost, and re-send lost notifications. "
        "Every converter also does this every SWEEP_INTERVAL_SECONDS."
    )

    def handle(self, *args, **options):
        counts = jobs_sweep()
        self.stdout.write(
            f"{counts['recovered']} job(s) recovered from dead converters, {counts['failed']} failed past the crash limit, "
            f"{counts['published']} published, {counts['notifications']} notification(s) re-sent."
        )
