"""What the client keeps between runs, in the user's config dir (platformdirs: $XDG_CONFIG_HOME/videomp3 on Linux):
`credentials.json` (server, email, tokens; mode 0600) and `state.json` (hashes of files already read, unfinished
uploads and jobs, so a rerun resumes). Every change is written to a temp file and renamed, under a lock that
threads and other `videomp3` processes share, so a file is never half-written and two runs never lose each
other's changes."""

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import platformdirs

APP_NAME = "videomp3"
CREDENTIALS = "credentials.json"
STATE = "state.json"
# Entries of state.json older than this are dropped: a tus server expires its partial uploads long before.
STATE_MAX_AGE_SECONDS = 30 * 24 * 3600

_thread_lock = threading.RLock()


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


@contextlib.contextmanager
def locked():
    """Exclusive use of the config dir: against other threads (an RLock) and other processes (flock)."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _thread_lock, open(directory / ".lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def read_json(name: str) -> dict:
    try:
        data = json.loads((config_dir() / name).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write_private_json(name: str, data: dict) -> None:
    """Replace the file with `data`, readable by the user alone (0600) from its first byte."""
    directory = config_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{name}.", dir=directory)  # mkstemp creates it 0600
    try:
        with os.fdopen(descriptor, "w") as temp:
            json.dump(data, temp, indent=1)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, directory / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def load_credentials() -> dict | None:
    credentials = read_json(CREDENTIALS)
    return credentials if credentials.get("server") and credentials.get("refresh") else None


def save_credentials(credentials: dict) -> None:
    with locked():
        write_private_json(CREDENTIALS, credentials)


def forget_credentials() -> bool:
    with locked():
        try:
            (config_dir() / CREDENTIALS).unlink()
        except FileNotFoundError:
            return False
        return True


# --- state.json: what lets a rerun pick up where the last one stopped


def _update_state(section: str, key: str, value) -> None:
    with locked():
        state = read_json(STATE)
        entries = state.setdefault(section, {})
        if value is None:
            entries.pop(key, None)
        else:
            entries[key] = {**value, "at": time.time()}
        cutoff = time.time() - STATE_MAX_AGE_SECONDS
        for name in list(state):
            state[name] = {k: v for k, v in state[name].items() if isinstance(v, dict) and v.get("at", 0) > cutoff}
        write_private_json(STATE, state)


def _state_entry(section: str, key: str) -> dict | None:
    return read_json(STATE).get(section, {}).get(key)


def cached_sha256(path: Path) -> str | None:
    """The SHA-256 read from this file before, if it has not changed since (same size and mtime)."""
    stat = path.stat()
    entry = _state_entry("hashes", str(path.resolve()))
    if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return entry.get("sha256")
    return None


def remember_sha256(path: Path, sha256: str) -> None:
    stat = path.stat()
    _update_state("hashes", str(path.resolve()), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256})


def job_for(key: str) -> str | None:
    entry = _state_entry("jobs", key)
    return entry.get("job_id") if entry else None


def remember_job(key: str, job_id: str | None) -> None:
    _update_state("jobs", key, {"job_id": job_id} if job_id else None)


def upload_url_for(key: str) -> str | None:
    entry = _state_entry("uploads", key)
    return entry.get("url") if entry else None


def remember_upload_url(key: str, url: str | None) -> None:
    _update_state("uploads", key, {"url": url} if url else None)
