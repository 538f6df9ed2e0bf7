"""`make run`: every role in one process on the embedded defaults."""

import os
import threading

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.services import demo_user_ensure
from conversion.services import job_convert
from core import broker, storage
from core.workers import run_periodically, run_worker
from notifications.services import email_deliveries_sweep, job_notify
from notifications.webhooks import Dispatcher
from uploads.services.recovery import jobs_sweep


class Command(BaseCommand):
    help = "Run the web role, the converter and the notifier together in one process (the embedded development mode)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port for the web role")

    def handle(self, *args, addr: str, **options):
        host, _, port = addr.rpartition(":")
        url = f"http://{host}:{port}"
        if "PUBLIC_URL" not in os.environ:
            # Emailed links ("your MP3 is ready", password resets) point where this process serves.
            settings.PUBLIC_URL = url
        storage.ping()  # starts the embedded MongoDB now, so a problem shows before the banner
        broker.declare_queues()
        stop = threading.Event()
        run_periodically(jobs_sweep, every=settings.SWEEP_INTERVAL_SECONDS, stop=stop, name="housekeeping")
        run_periodically(
            email_deliveries_sweep, every=settings.SWEEP_INTERVAL_SECONDS, stop=stop, name="email housekeeping"
        )
        Dispatcher(stop=stop).start()  # webhooks
        workers = [
            threading.Thread(
                target=run_worker,
                args=(
                    broker.VIDEO,
                    lambda job_id, on_claimed: job_convert(job_id=job_id, on_claimed=on_claimed, hand_back=stop),
                ),
                kwargs={"stop": stop},
                name="converter",
                daemon=True,
            ),
            threading.Thread(
                target=run_worker,
                args=(broker.MP3, lambda job_id, _on_claimed: job_notify(job_id=job_id)),
                kwargs={"stop": stop},
                name="notifier",
                daemon=True,
            ),
        ]
        for worker in workers:
            worker.start()
        email, password = demo_user_ensure(credentials_path=settings.VAR_DIR / "demo-login.txt")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"videomp3 is running at {url}/",
                    f"  sign in as {email} with password {password}",
                    f"  original-style login: curl -u {email}:{password} -X POST {url}/login",
                    f"  API docs: {url}/api/docs/   admin: {url}/admin/",
                    f"  SQL: {settings.DATABASES['default']['NAME']}   MongoDB: {settings.MONGODB_URI or 'embedded SecantusDB in var/mongodb'}"
                    f"   queue: {'RabbitMQ' if settings.AMQP_URL else 'in-process'}   emails: {settings.EMAIL_FILE_PATH if 'filebased' in settings.EMAIL_BACKEND else settings.EMAIL_BACKEND}",
                    "",
                ]
            )
        )
        try:
            call_command("runserver", addr, use_reloader=False, use_threading=True)
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=10)
