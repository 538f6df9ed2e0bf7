"""A private RabbitMQ node beside the machine's shared one, so a test can stop and restart a broker
without touching anybody else's. Its data directory survives restarts, as a real node's would."""

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.services import free_port, service_missing, wait_for_port


class PrivateRabbitMQ:
    def __init__(self, extra_config: str = ""):
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"faults{self.port}@localhost"
        self.base = Path(tempfile.mkdtemp(prefix="videomp3-rabbitmq-"))
        self.base.chmod(0o755)
        (self.base / "mnesia").mkdir()
        (self.base / "log").mkdir()
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {self.port}\nloopback_users = none\n{extra_config}"
        )
        shutil.chown(self.base, "rabbitmq", "rabbitmq")
        for path in self.base.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def start(self, timeout: float = 90) -> None:
        # In the foreground as a background process: `rabbitmq-server -detached` fails silently here.
        with open(self.base / "server.out", "ab") as out:
            self.process = subprocess.Popen(
                ["rabbitmq-server"], env=self._env(), stdout=out, stderr=subprocess.STDOUT, cwd="/tmp"
            )
        if not wait_for_port(self.port, timeout):
            raise RuntimeError(f"private RabbitMQ did not start; see {self.base / 'server.out'}")

    def stop(self) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.node, "stop"], env=self._env(), capture_output=True, timeout=60, check=False
        )
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def private_node(extra_config: str = ""):
    """A started private node, removed afterwards; a missing or unbootable RabbitMQ is a missing service."""
    if shutil.which("rabbitmq-server") is None:
        service_missing("rabbitmq-server is not installed, so no private node can be started")
    node = PrivateRabbitMQ(extra_config)
    try:
        node.start()
    except (RuntimeError, OSError) as exc:
        node.remove()
        service_missing(f"a private RabbitMQ node could not start: {exc}")
    try:
        yield node
    finally:
        node.remove()
