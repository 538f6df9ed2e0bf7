"""The embedded defaults that run in-process when nothing is configured (`make run`).

SecantusDB is GPL-2.0 and a development dependency only: it is imported here, lazily,
and never when MONGODB_URI points at a real MongoDB.
"""

import atexit
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_server = None
_lock = threading.Lock()


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
            storage_path = settings.VAR_DIR / "mongodb"
            storage_path.mkdir(parents=True, exist_ok=True)
            server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=str(storage_path))
            try:
                server.start()
            except Exception as exc:  # noqa: BLE001 - WiredTiger's lock error has no specific type
                raise ImproperlyConfigured(
                    f"The embedded MongoDB could not open {storage_path}: {exc}. "
                    "Another videomp3 process may be using it; stop that one or set MONGODB_URI."
                ) from exc
            atexit.register(server.stop)
            _server = server
        return _server.uri
