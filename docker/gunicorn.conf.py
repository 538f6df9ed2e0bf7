"""gunicorn settings for the web role, chosen for large uploads (see the README's Kubernetes section).

Threads, not processes, carry the requests: an upload of up to MAX_UPLOAD_SIZE spends most of
its time waiting on the network and on MongoDB, so one slow upload holds one thread, not a
whole worker process. gthread workers report to the arbiter from their main loop, so `timeout`
bounds a stuck worker, not a long request.
"""

import os

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
accesslog = "-"
errorlog = "-"
# The scheme (X-Forwarded-Proto) is trusted from these addresses: the ingress controller's pods.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
