"""`make run`: every role in one process on the embedded defaults."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.services import demo_user_ensure


class Command(BaseCommand):
    help = "Run the web role and the workers together in one process (the embedded development mode)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port for the web role")

    def handle(self, *args, addr: str, **options):
        email, password = demo_user_ensure(credentials_path=settings.VAR_DIR / "demo-login.txt")
        host, _, port = addr.rpartition(":")
        url = f"http://{host}:{port}"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"videomp3 is starting at {url}/",
                    f"  sign in as {email} with password {password}",
                    f"  original-style login: curl -u {email}:{password} -X POST {url}/login",
                    f"  API docs: {url}/api/docs/   admin: {url}/admin/",
                    "",
                ]
            )
        )
        call_command("runserver", addr, use_reloader=False, use_threading=True)
