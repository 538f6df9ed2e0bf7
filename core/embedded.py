"""The embedded defaults that run in-process when nothing is configured (`make run`).

SecantusDB is GPL-2.0 and a development dependency only: it is imported here, lazily,
and never when MONGODB_URI points at a real MongoDB.
"""

import atexit
import errno
import logging
import threading
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

_server = None  # secantus.SecantusDBServer, typed loosely because secantus is optional
_lock = threading.Lock()


def _is_lock_error(exc: BaseException) -> bool:
    # WiredTiger refuses a data directory another process holds with EBUSY; its Python error
    # type has no errno attribute, so the message ("Device or resource busy") is what identifies it.
    return getattr(exc, "errno", None) == errno.EBUSY or "resource busy" in str(exc).lower()


def mongodb_uri() -> str:
    """Start the embedded SecantusDB server once per process (data under VAR_DIR/mongodb) and return its URI."""
    global _server
    with _lock:
        if _server is None:
            try:
                from secantus import SecantusDBServer
            except ImportError:
                raise ImproperlyConfigured(
                    "MONGODB_URI is not set and the embedded SecantusDB server is not installed; "
                    "set MONGODB_URI or pip install -r requirements-dev.txt."
                ) from None
            storage_path = Path(settings.VAR_DIR) / "mongodb"
            storage_path.mkdir(parents=True, exist_ok=True)
            try:
                # The constructor opens WiredTiger (and takes its exclusive lock); start() binds the port.
                server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=str(storage_path))
            except Exception as exc:  # noqa: BLE001 - WiredTigerError has no importable, specific type
                if _is_lock_error(exc):
                    raise ImproperlyConfigured(
                        f"Another videomp3 process is using {storage_path} (var/mongodb), the embedded MongoDB's data; "
                        "stop that process or set MONGODB_URI to a MongoDB server."
                    ) from exc
                raise ImproperlyConfigured(f"The embedded MongoDB could not open {storage_path}: {exc}.") from exc
            try:
                server.start()
            except OSError as exc:
                server.stop()
                raise ImproperlyConfigured(f"The embedded MongoDB could not listen on 127.0.0.1: {exc}.") from exc
            # Stopping closes WiredTiger cleanly, so the next start does not have to recover.
            atexit.register(server.stop)
            logger.info("embedded MongoDB (SecantusDB) at %s with data in %s", server.uri, storage_path)
            _server = server
        return _server.uri
