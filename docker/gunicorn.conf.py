"""gunicorn settings for the web role, chosen for large uploads (see the README's Kubernetes section).

Threads, not processes, carry the requests: an upload of up to MAX_UPLOAD_SIZE spends most of
its time waiting on the network and on MongoDB, so one slow upload holds one thread, not a
whole worker process. gthread workers report to the arbiter from their main loop, so `timeout`
bounds a stuck worker, not a long request.
"""

import contextlib
import os
from pathlib import Path

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 120
# SIGTERM lets in-flight uploads finish for this long; the pod's terminationGracePeriodSeconds is longer.
graceful_timeout = 90
# Longer than the ingress controller's upstream keep-alive (nginx: 60 s), so it closes idle connections first.
keepalive = 75
# The heartbeat file of each worker lives in memory, not on the disk the uploads are spooled to.
_SHARED_MEMORY = "/dev/shm"  # noqa: S108 - the container's own tmpfs, used as gunicorn's docs advise
worker_tmp_dir = _SHARED_MEMORY if os.path.isdir(_SHARED_MEMORY) else None
# Restart a worker now and then, so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
# No control socket: nothing in a pod runs gunicornc, and its default path lies under the home
# directory, which the image's user does not have (and the root filesystem is read-only).
control_socket_disable = True
accesslog = "-"
errorlog = "-"
# The scheme (X-Forwarded-Proto) is trusted from these addresses: the ingress controller's pods.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

if os.environ.get("LOG_FORMAT") == "json":
    # gunicorn's own lines (start, worker boot and exit, the access log) in the app's JSON format
    # (core/logs.py), so a log collector parses every line the container writes.
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "core.logs.JsonFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

# Liveness without HTTP (`entrypoint.py healthcheck web`): a probe sent as a request would wait in
# the listen queue behind uploads holding every thread. Each worker's main loop, which accepts
# connections whether or not a thread is free, touches a file here about once a second; a worker
# that hangs stops touching it. The entrypoint sets the directory; unset, no heartbeats are written.
_HEARTBEAT_DIR = os.environ.get("WEB_HEARTBEAT_DIR")


def _heartbeat_file(pid: int) -> Path:
    return Path(_HEARTBEAT_DIR) / f"worker-{pid}"


def on_starting(server):
    """Forget the workers of an earlier run of this container (/tmp outlives a container restart)."""
    if _HEARTBEAT_DIR:
        Path(_HEARTBEAT_DIR).mkdir(parents=True, exist_ok=True)
        for stale in Path(_HEARTBEAT_DIR).glob("worker-*"):
            stale.unlink(missing_ok=True)


def post_worker_init(worker):
    if not _HEARTBEAT_DIR:
        return
    heartbeat = _heartbeat_file(worker.pid)
    notify_arbiter = worker.notify

    def notify_arbiter_and_probe():
        notify_arbiter()
        heartbeat.touch()

    heartbeat.touch()
    worker.notify = notify_arbiter_and_probe


def child_exit(server, worker):
    """The arbiter reaped a worker (even one killed with SIGKILL): its heartbeat no longer counts."""
    if _HEARTBEAT_DIR:
        with contextlib.suppress(OSError):
            _heartbeat_file(worker.pid).unlink()
