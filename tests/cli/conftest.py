"""The `videomp3` console script, run as a subprocess against one live stack: gunicorn (the web
role) and run_converter as real processes on the test database, a private MongoDB database and private
RabbitMQ queues, started once for tests/cli/. Each test has its own user and its own config dir (XDG_CONFIG_HOME)."""

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import override_settings

from tests.factories import DEFAULT_PASSWORD, user_create
from tests.support import media
from tests.support.pipeline import shared_service_env
from tests.support.processes import manage_command, stop_process, web_server

CLI = Path(sys.executable).parent / "videomp3"


@dataclass
class Stack:
    base_url: str
    log_dir: Path
    converter: subprocess.Popen

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.log_dir.glob("*.log"))


@pytest.fixture(scope="package")
def stack(django_db_setup, secantus_server, rabbitmq_url, tmp_path_factory):
    from core import broker, storage

    if not CLI.exists():
        pytest.fail(f"the console script is not installed at {CLI}: run `{sys.executable} -m pip install -e cli`")
    base = tmp_path_factory.mktemp("cli-stack")
    overrides = override_settings(
        MONGODB_URI=secantus_server.uri,
        MONGODB_DB=f"test_{uuid.uuid4().hex[:12]}",
        AMQP_URL=rabbitmq_url,
        QUEUE_PREFIX=f"test-{uuid.uuid4().hex[:10]}-",
    )
    overrides.enable()
    storage.reset_client()
    broker.reset()
    env = shared_service_env(base / "emails")
    try:
        converter = manage_command(["run_converter"], base / "converter.log", **env)
        try:
            with web_server(base / "web.log", **env) as url:
                yield Stack(url, base, converter)
        finally:
            code = stop_process(converter)
        assert code == 0, (
            f"the converter did not stop cleanly ({code}):\n{(base / 'converter.log').read_text()[-2000:]}"
        )
    finally:
        try:
            broker.delete_queues()
            storage.drop_database()
        finally:
            storage.reset_client()
            broker.reset()
            overrides.disable()


@dataclass
class Cli:
    """The console script with this test's own config dir."""

    config_home: Path
    cwd: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
        return {**env, "XDG_CONFIG_HOME": str(self.config_home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}

    def run(self, *args: str, stdin: str = "", timeout: float = 90) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CLI), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=self.cwd,
            timeout=timeout,
        )

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(CLI), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
            cwd=self.cwd,
        )

    @property
    def credentials_path(self) -> Path:
        return self.config_home / "videomp3" / "credentials.json"


@pytest.fixture
def cli(tmp_path):
    (tmp_path / "config").mkdir()
    return Cli(tmp_path / "config", tmp_path)


@pytest.fixture
def signed_in(stack, cli):
    """A new user, signed in through `videomp3 login` (email and password piped, as a script would)."""
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    user_create(email=email)
    result = cli.run("login", "--server", stack.base_url, stdin=f"{email}\n{DEFAULT_PASSWORD}\n")
    assert result.returncode == 0, result.stderr
    cli.email = email
    return cli


def video_folder(directory: Path, media_files: Path, kinds: dict[str, str]) -> Path:
    """A folder of generated media (2 s each) under the given names."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, kind in kinds.items():
        shutil.copyfile(media.make_media(media_files, kind, seconds=2.0), directory / name)
    return directory
