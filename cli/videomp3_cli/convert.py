"""`videomp3 convert`: each file uploaded (or found on the server already), converted, and its MP3 saved
beside it (or under --out), N files at a time.

A file is skipped when its MP3 is already at the target path. An MP3 is written to a hidden temp file in
the target's folder and renamed when whole, so an interrupted run never leaves a half-written MP3 under its
real name. The job each file became is kept in state.json until its MP3 is saved, so a rerun follows it
instead of uploading the file again.
"""

import contextlib
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from videomp3_cli import config
from videomp3_cli.api import ApiError, AuthError, CliError, Session, Unreachable, UsageError
from videomp3_cli.output import Reporter, human_size
from videomp3_cli.transfer import Interrupted, Upload, file_sha256, upload_key, uploader_for

# What a folder is searched for: the containers the server accepts (its probe decides in the end). A named
# file is sent whatever its extension; MP3s are left out of folders, their MP3 would be themselves.
MEDIA_EXTENSIONS = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts",
    ".3gp", ".ogv", ".wav", ".flac", ".m4a", ".ogg", ".oga", ".opus", ".aac", ".wma", ".mka",
}  # fmt: skip
POLL_SECONDS = 1.0
# After Ctrl-C, how long the files in flight get to stop at their next piece (a PATCH in flight may take
# longer on a slow network: the process then ends without it, and the rerun asks the server's offset).
STOP_GRACE_SECONDS = 3.0

# Temp files being written, so an exit that cannot wait for its threads still removes them.
_partial_files: set[str] = set()
_partial_lock = threading.Lock()


def remove_partial_files() -> None:
    with _partial_lock:
        for name in list(_partial_files):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            _partial_files.discard(name)


FINISHED = {"done", "failed", "cancelled", "expired"}


@dataclass
class Item:
    source: Path
    target: Path
    name: str  # how the file is shown: its path as given
    result: str = ""
    detail: str = ""
    job_id: str | None = None
    unreachable: bool = field(default=False, repr=False)

    def as_dict(self) -> dict:
        return {
            "source": self.name,
            "target": str(self.target),
            "result": self.result,
            "detail": self.detail,
            "job_id": self.job_id,
        }


def discover(paths: list[str], *, recursive: bool, out: str | None) -> list[Item]:
    """The files to convert, each with its MP3's path. UsageError for a path that does not exist, or
    when nothing is left to convert."""
    out_dir = Path(out).expanduser() if out else None
    items, seen = [], set()
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
            for source in found:
                relative = source.relative_to(path)
                base = (out_dir / relative.parent) if out_dir else source.parent
                items.append(Item(source, base / f"{source.stem}.mp3", str(source)))
        elif path.is_file():
            items.append(Item(path, (out_dir or path.parent) / f"{path.stem}.mp3", given))
        else:
            raise UsageError(f"{given}: no such file or folder.")
    unique, targets = [], set()
    for item in items:
        if item.source.resolve() in seen:
            continue
        seen.add(item.source.resolve())
        if item.target in targets:  # talk.mkv beside talk.mp4: the second gets talk.mp4.mp3
            item.target = item.target.with_name(f"{item.source.name}.mp3")
        targets.add(item.target)
        unique.append(item)
    if not unique:
        raise UsageError(
            "No video or audio files to convert there"
            + ("" if recursive else " (add --recursive to look in subfolders)")
            + "."
        )
    return unique


def save_atomically(target: Path, fill) -> None:
    """fill(file) writes the MP3 into a hidden temp file beside the target, renamed to it once whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    with _partial_lock:
        _partial_files.add(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as temp:
            fill(temp)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    finally:
        with _partial_lock:
            _partial_files.discard(temp_name)


def download_mp3(session: Session, job_id: str, target: Path, *, stop: threading.Event, on_bytes=None) -> None:
    def fill(temp):
        def write(piece):
            if stop.is_set():
                raise Interrupted()
            temp.write(piece)

        session.stream_to(f"/api/jobs/{job_id}/mp3", write, on_bytes=on_bytes)

    save_atomically(target, fill)


def wait_for_job(session: Session, job: dict, *, stop: threading.Event, on_progress) -> dict:
    """Poll the job until it is finished; on_progress(job) at each change."""
    etag = None
    while job["status"] not in FINISHED:
        if stop.wait(POLL_SECONDS):
            raise Interrupted()
        response = session.request("GET", f"/api/jobs/{job['id']}/", headers={"If-None-Match": etag} if etag else {})
        if response.status_code == 304:
            continue
        if response.status_code >= 400:
            raise ApiError(response)
        etag = response.headers.get("ETag")
        job = response.json()
        on_progress(job)
    return job


class Converter:
    def __init__(self, session: Session, reporter: Reporter, options: dict, stop: threading.Event):
        self.session = session
        self.reporter = reporter
        self.options = options
        self.stop = stop
        self.uploader = uploader_for(session)

    def run(self, items: list[Item], parallel: int) -> None:
        pool = ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="convert")
        futures = [pool.submit(self.one, item) for item in items]
        try:
            while not all(future.done() for future in futures):
                time.sleep(0.1)  # the main thread stays free to receive Ctrl-C
        except KeyboardInterrupt:
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while time.monotonic() < deadline and not all(future.done() for future in futures):
                time.sleep(0.05)
            raise
        pool.shutdown()
        for future in futures:
            error = future.exception()
            if isinstance(error, UsageError | AuthError):
                raise error  # options refused, or the sign-in ended: the same for every file

    def one(self, item: Item) -> None:
        if self.stop.is_set():
            return
        name = item.name
        if item.target.exists():
            item.result, item.detail = "skipped", f"{item.target} exists"
            self.reporter.finish(name, item.result, item.detail)
            return
        try:
            self._convert(item)
        except Interrupted:
            item.result, item.detail = "interrupted", ""
        except (UsageError, AuthError):  # the same for every file: the run stops
            self.stop.set()
            raise
        except Unreachable as exc:
            item.result, item.detail, item.unreachable = "failed", str(exc), True
        except (ApiError, CliError, OSError) as exc:
            item.result, item.detail = "failed", str(exc)
        if item.result != "interrupted":
            self.reporter.finish(name, item.result, item.detail)

    def _convert(self, item: Item) -> None:
        name = item.name
        self.reporter.phase(name, "reading")
        sha256 = file_sha256(item.source, self.stop)
        upload = Upload(item.source, sha256, self.options, upload_key(self.session.server, sha256, self.options))
        job = self._known_job(upload.key)
        if job is None:
            started = False

            def on_progress(sent, total):
                nonlocal started
                if not started:  # the first call says where the upload starts: beyond 0, it resumed
                    note = f"resumed at {human_size(sent)}" if sent else ""
                    self.reporter.phase(name, "uploading", sent, total, note=note)
                    started = True
                self.reporter.advance(name, sent, total)

            job = self.uploader.upload(upload, on_progress, self.stop)
        item.job_id = job["id"]
        config.remember_job(upload.key, job["id"])
        reused = bool(job.get("reused_from"))
        if job["status"] not in FINISHED:
            self.reporter.phase(name, "converting", job.get("progress") or 0, 100)
            job = wait_for_job(
                self.session,
                job,
                stop=self.stop,
                on_progress=lambda job: self.reporter.advance(name, job.get("progress") or 0, 100),
            )
        if job["status"] != "done":
            config.remember_job(upload.key, None)
            item.result = "failed"
            item.detail = job.get("error") or f"The job ended {job['status']}."
            return
        self.reporter.phase(name, "downloading", 0, job.get("mp3_size") or None)
        download_mp3(
            self.session,
            job["id"],
            item.target,
            stop=self.stop,
            on_bytes=lambda received, total: self.reporter.advance(name, received, total or None),
        )
        config.remember_job(upload.key, None)
        item.result = "reused" if reused else "converted"
        item.detail = str(item.target)

    def _known_job(self, key: str) -> dict | None:
        """The job an earlier run made of this file with these options, while it can still give the MP3."""
        job_id = config.job_for(key)
        if not job_id:
            return None
        try:
            job = self.session.json("GET", f"/api/jobs/{job_id}/")
        except ApiError:
            job = None
        if not job or job["status"] not in ("queued", "converting", "done"):
            config.remember_job(key, None)
            return None
        return job
