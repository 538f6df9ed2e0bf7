#!/usr/bin/env python3
"""The image's one entrypoint: `entrypoint.py ROLE`, where ROLE is one of ROLES.

Each role replaces this process (exec), so the role's own program is PID 1 and receives the
container's SIGTERM directly: gunicorn drains its requests, a worker finishes or hands back its
message. `entrypoint.py healthcheck [ROLE]` is the image's HEALTHCHECK and the workers' probe.

Standard library only: the healthcheck must stay cheap, and nothing here needs Django.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = APP_DIR / "docker" / "gunicorn.conf.py"
# Written at start-up so the image's single HEALTHCHECK knows which role this container runs.
ROLE_FILE = Path(tempfile.gettempdir()) / "videomp3-role"
# The worker roles touch WORKER_HEARTBEAT_FILE from their consume loop (every few seconds, at
# least every 30 s). The image sets it; /tmp is the container's own (an emptyDir in Kubernetes).
DEFAULT_HEARTBEAT_FILE = "/tmp/worker-heartbeat"  # noqa: S108
HEARTBEAT_FILE = Path(os.environ.get("WORKER_HEARTBEAT_FILE") or DEFAULT_HEARTBEAT_FILE)
HEARTBEAT_MAX_AGE_SECONDS = 90  # three missed beats
# Each gunicorn worker touches its file here about once a second (docker/gunicorn.conf.py): in memory
# where the container has /dev/shm, away from the disk the uploads are spooled to.
DEFAULT_WEB_HEARTBEAT_DIR = (
    "/dev/shm/videomp3-web" if os.path.isdir("/dev/shm") else str(Path(tempfile.gettempdir()) / "videomp3-web")  # noqa: S108
)
WEB_HEARTBEAT_DIR = Path(os.environ.get("WEB_HEARTBEAT_DIR") or DEFAULT_WEB_HEARTBEAT_DIR)
# gunicorn's arbiter kills a worker silent for its `timeout` (120 s); the probe notices sooner.
WEB_HEARTBEAT_MAX_AGE_SECONDS = float(os.environ.get("WEB_HEARTBEAT_MAX_AGE_SECONDS") or 30)
MIGRATIONS_POLL_SECONDS = 5

MANAGE = [sys.executable, str(APP_DIR / "manage.py")]
ROLES: dict[str, list[str]] = {
    "web": ["gunicorn", "--config", str(GUNICORN_CONFIG), "videomp3.wsgi:application"],
    "converter": [*MANAGE, "run_converter"],
    "notifier": [*MANAGE, "run_notifier"],
    "migrate": [*MANAGE, "migrate", "--noinput"],
}
WORKER_ROLES = {"converter", "notifier"}
USAGE = (
    "usage: entrypoint.py ROLE, where ROLE is one of: "
    + ", ".join(ROLES)
    + "; or wait-for-migrations [DEADLINE_SECONDS], healthcheck [ROLE], manage COMMAND [ARGS...]"
)


def web_is_alive(heartbeat_dir: Path = WEB_HEARTBEAT_DIR, max_age: float = WEB_HEARTBEAT_MAX_AGE_SECONDS) -> bool:
    """Every gunicorn worker's main loop beat lately. Not an HTTP request: one would queue behind
    uploads holding every thread, and the kubelet would restart a pod that is only busy."""
    now = time.time()
    ages = []
    for beat in heartbeat_dir.glob("worker-*"):
        try:
            ages.append(now - beat.stat().st_mtime)
        except OSError:
            continue  # the arbiter removed it: that worker exited
    return bool(ages) and max(ages) <= max_age


def worker_is_alive(heartbeat: Path = HEARTBEAT_FILE, max_age: float = HEARTBEAT_MAX_AGE_SECONDS) -> bool:
    try:
        return time.time() - heartbeat.stat().st_mtime <= max_age
    except OSError:
        return False


def healthcheck(role: str | None = None) -> int:
    """0 when the role's process is alive, 1 when not (Docker HEALTHCHECK and exec probe convention)."""
    if role is None:
        try:
            role = ROLE_FILE.read_text().strip()
        except OSError:
            role = "web"
    if role == "web":
        alive = web_is_alive()
    elif role in WORKER_ROLES:
        alive = worker_is_alive()
    else:
        alive = True  # one-shot roles: their exit code is their health
    if not alive:
        print(f"videomp3 {role} is not alive", file=sys.stderr)
    return 0 if alive else 1


def wait_for_migrations(deadline_seconds: float | None = None) -> int:
    """Return 0 once the database schema is current: an init container, so no role runs on an old schema.

    Past `deadline_seconds` it says so and returns 1: the pod then shows the failed init container
    (Init:Error, and its log names the migrate Job) instead of waiting forever without a word."""
    started = time.monotonic()
    while subprocess.run([*MANAGE, "migrate", "--check"], stdout=subprocess.DEVNULL, check=False).returncode != 0:
        if deadline_seconds is not None and time.monotonic() - started >= deadline_seconds:
            print(
                f"the database schema is still not current after {deadline_seconds:.0f} s: the migrate Job did not "
                "finish. Check it with `kubectl get jobs` and its log, fix it, and apply the release again.",
                file=sys.stderr,
                flush=True,
            )
            return 1
        print(f"waiting for the migrate job; checking again in {MIGRATIONS_POLL_SECONDS} s", flush=True)
        time.sleep(MIGRATIONS_POLL_SECONDS)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    role, args = argv[0], argv[1:]
    if role == "healthcheck":
        return healthcheck(args[0] if args else None)
    if role == "wait-for-migrations":
        return wait_for_migrations(float(args[0]) if args else None)
    if role == "manage":
        command = [*MANAGE, *args]
    elif role in ROLES:
        command = [*ROLES[role], *args]
        if role == "web":
            os.environ.setdefault("WEB_HEARTBEAT_DIR", str(WEB_HEARTBEAT_DIR))
        try:
            ROLE_FILE.write_text(role + "\n")
        except OSError:
            pass  # no writable /tmp: the HEALTHCHECK then assumes web
    else:
        print(f"unknown role {role!r}; {USAGE}", file=sys.stderr)
        return 2
    os.chdir(APP_DIR)
    os.execvp(command[0], command)  # noqa: S606 - argv from the fixed table above, no shell
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
