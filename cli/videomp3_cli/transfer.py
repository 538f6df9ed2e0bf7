"""Sending a file to the server: one interface, two ways.

- `TusUploader`: resumable (tus 1.0 at /api/uploads/, through tuspy), used when the server offers it. Each
  upload's URL is kept in state.json, so a rerun after Ctrl-C or a dropped network continues from the
  server's offset instead of starting again.
- `MultipartUploader`: one POST /api/jobs/ (any videomp3 server), sent again whole if interrupted.

Before either sends a byte, `reused_job` asks the server whether it already has this content with these
options (the file's SHA-256 in a Repr-Digest header, RFC 9530): if so, the job comes back at once and
nothing is uploaded.
"""

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from videomp3_cli import config
from videomp3_cli.api import ApiError, CliError, Session, UsageError, unreachable

PIECE = 256 * 1024
TUS_PATH = "/api/uploads/"
TUS_CHUNK = 8 * 1024 * 1024
TUS_VERSION = "1.0.0"
# How often a server that is busy (503 with Retry-After, or too many of your jobs queued) is asked again.
BUSY_RETRIES = 30
BUSY_WAIT_CAP_SECONDS = 30.0


class Interrupted(Exception):
    """The user pressed Ctrl-C: the transfer stopped where it was."""


@dataclass
class Upload:
    path: Path
    sha256: str
    options: dict  # the option fields as the server names them (preset included)
    key: str  # server + content + options: what identifies this upload across runs


def file_sha256(path: Path, stop: threading.Event) -> str:
    cached = config.cached_sha256(path)
    if cached:
        return cached
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while piece := source.read(1024 * 1024):
            if stop.is_set():
                raise Interrupted()
            digest.update(piece)
    config.remember_sha256(path, digest.hexdigest())
    return digest.hexdigest()


def repr_digest(sha256: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"


def query_options(options: dict) -> dict[str, str]:
    return {
        name: ("true" if value is True else "false" if value is False else str(value))
        for name, value in options.items()
    }


def _busy_wait(error: ApiError, stop: threading.Event) -> bool:
    """Wait as the server asked when it is only busy; False when the refusal is final."""
    busy = error.status == 503 or (error.status == 429 and error.code == "too_many_queued_jobs")
    if not busy:
        return False
    if stop.wait(min(error.retry_after or 5.0, BUSY_WAIT_CAP_SECONDS)):
        raise Interrupted()
    return True


def _refuse_options(error: ApiError) -> None:
    if error.code == "invalid_options":
        raise UsageError(str(error))


def reused_job(session: Session, upload: Upload) -> dict | None:
    """The job dedup gives for this content and these options, without sending the file; None when the
    server has none (or answers digests with nothing: an empty form then has no file, and is refused)."""
    boundary = secrets.token_hex(16)
    response = session.request(
        "POST",
        "/api/jobs/",
        params=query_options(upload.options),
        headers={
            "Repr-Digest": repr_digest(upload.sha256),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        content=f"--{boundary}--\r\n".encode(),
    )
    if response.status_code in (200, 201, 202):
        return response.json()
    error = ApiError(response)
    _refuse_options(error)
    return None


class MultipartUploader:
    """POST /api/jobs/ with the file as the one multipart field, streamed from disk."""

    resumable = False

    def __init__(self, session: Session):
        self.session = session

    def upload(self, upload: Upload, on_progress: Callable[[int, int], None], stop: threading.Event) -> dict:
        reused = reused_job(self.session, upload)
        if reused is not None:
            return reused
        size = upload.path.stat().st_size
        boundary = secrets.token_hex(16)
        name = upload.path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body():
            yield head
            sent = 0
            on_progress(0, size)
            with open(upload.path, "rb") as source:
                while piece := source.read(PIECE):
                    if stop.is_set():
                        raise Interrupted()
                    yield piece
                    sent += len(piece)
                    on_progress(sent, size)
            yield tail

        for _ in range(BUSY_RETRIES):
            response = self.session.request(
                "POST",
                "/api/jobs/",
                params=query_options(upload.options),
                headers={
                    "Repr-Digest": repr_digest(upload.sha256),
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Content-Length": str(len(head) + size + len(tail)),
                },
                content_factory=body,
            )
            if response.status_code < 400:
                return response.json()
            error = ApiError(response)
            _refuse_options(error)
            if not _busy_wait(error, stop):
                raise error
        raise error


class TusUploader:
    """tus 1.0 at /api/uploads/: creation (which also answers dedup for a declared SHA-256) and the offset
    asked over httpx, the bytes sent by tuspy in 8 MiB PATCHes, each with its SHA-1 checksum. The upload's
    URL is kept in state.json until its job is known, so a rerun resumes at the server's offset."""

    resumable = True

    def __init__(self, session: Session):
        self.session = session
        self.endpoint = urljoin(session.server + "/", TUS_PATH.lstrip("/"))

    @staticmethod
    def offered(session: Session) -> bool:
        """Whether the server speaks tus at /api/uploads/ (OPTIONS answers with Tus-Version)."""
        try:
            response = session.http.options(TUS_PATH)
        except httpx.TransportError as exc:
            raise unreachable(session.server, exc) from None
        return response.status_code < 300 and "Tus-Version" in response.headers

    @staticmethod
    def _metadata(upload: Upload) -> str:
        options = dict(upload.options)
        metadata = {"filename": upload.path.name, "sha256": upload.sha256}
        preset = options.pop("preset", None)
        if preset:
            metadata["preset"] = str(preset)
        if options:
            metadata["options"] = json.dumps(options)
        return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in metadata.items())

    def _create(self, upload: Upload, size: int, stop: threading.Event) -> tuple[str | None, dict | None]:
        """(the new upload's URL, None), or (None, the job) when dedup serves the declared SHA-256."""
        headers = {"Tus-Resumable": TUS_VERSION, "Upload-Length": str(size), "Upload-Metadata": self._metadata(upload)}
        for _ in range(BUSY_RETRIES):
            response = self.session.request("POST", TUS_PATH, headers=headers)
            if response.status_code == 201:
                job = _job_from({}, response.content)
                if job is not None and "status" in job:
                    return None, job
                return urljoin(self.endpoint, response.headers["Location"]), None
            error = ApiError(response)
            _refuse_options(error)
            if not _busy_wait(error, stop):
                raise error
        raise error

    def _resume_offset(self, url: str) -> tuple[int | None, dict | None]:
        """(the server's offset, None) for an upload still open, (None, its job) for one that became a job,
        (None, None) for one the server no longer has (expired, deleted)."""
        response = self.session.request("HEAD", url, headers={"Tus-Resumable": TUS_VERSION})
        if response.status_code != 200:
            return None, None
        location = response.headers.get("Content-Location", "")
        if "/api/jobs/" in location:
            return None, self.session.json("GET", location)
        return int(response.headers["Upload-Offset"]), None

    def upload(self, upload: Upload, on_progress: Callable[[int, int], None], stop: threading.Event) -> dict:
        from tusclient.client import TusClient
        from tusclient.exceptions import TusCommunicationError

        size = upload.path.stat().st_size
        url = config.upload_url_for(upload.key)
        offset = 0
        if url:
            offset, job = self._resume_offset(url)
            if job is not None:
                config.remember_upload_url(upload.key, None)
                return job
            if offset is None:
                url, offset = None, 0
        if not url:
            url, job = self._create(upload, size, stop)
            if job is not None:
                return job
            config.remember_upload_url(upload.key, url)
        on_progress(offset, size)  # more than 0: resumed
        for _ in range(BUSY_RETRIES):
            token = self.session.access_token
            client = TusClient(self.endpoint, headers={"Authorization": f"Bearer {token}"})
            uploader = client.uploader(file_path=str(upload.path), chunk_size=TUS_CHUNK, upload_checksum=True)
            uploader.url, uploader.offset = url, offset
            try:
                while uploader.offset < size:
                    if stop.is_set():
                        raise Interrupted()
                    uploader.upload_chunk()
                    on_progress(uploader.offset, size)
                config.remember_upload_url(upload.key, None)
                job = _job_from(uploader.request.response_headers, uploader.request.response_content)
                return job if job and "status" in job else self.session.json("GET", f"/api/jobs/{job['id']}/")
            except TusCommunicationError as exc:
                offset = uploader.offset
                status = getattr(exc, "status_code", None)
                if status is None:
                    raise unreachable(self.session.server, exc) from None
                if status == 401:
                    self.session.refresh(token)
                    continue
                if status == 409:  # the server holds another offset (a chunk that arrived unanswered)
                    offset, job = self._resume_offset(url)
                    if job is not None or offset is None:
                        config.remember_upload_url(upload.key, None)
                        if job is not None:
                            return job
                        expired = b'{"detail": "The upload expired on the server; run the command again."}'
                        raise _TusRefusal(404, expired) from None
                    continue
                error = _TusRefusal(status, exc.response_content)
                if not _busy_wait(error, stop):
                    config.remember_upload_url(upload.key, None)  # the server removed it with its refusal
                    raise error from None
        raise CliError("The server kept refusing this upload's chunks; try again later.")


def _job_from(headers: dict, content: bytes | None) -> dict | None:
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        if isinstance(body.get("job"), dict):
            return body["job"]
        if body.get("status") and body.get("id"):
            return body
        for name in ("job_id", "job"):
            if isinstance(body.get(name), str):
                return {"id": body[name]}
    for name in ("upload-job-id", "job-id", "x-job-id"):
        if headers.get(name):
            return {"id": headers[name]}
    location = headers.get("content-location") or ""
    if "/api/jobs/" in location:
        return {"id": location.rstrip("/").rsplit("/", 1)[-1]}
    return None


class _TusRefusal(ApiError):
    """A refusal tuspy raised, read as the server's answer (its sentence is in the body)."""

    def __init__(self, status: int, content: bytes | str | None):
        body = content.encode() if isinstance(content, str) else content or b""
        super().__init__(httpx.Response(status, content=body, headers={"Content-Type": "application/json"}))


def uploader_for(session: Session):
    return TusUploader(session) if TusUploader.offered(session) else MultipartUploader(session)


def upload_key(server: str, sha256: str, options: dict) -> str:
    return f"{server}|{sha256}|{json.dumps(options, sort_keys=True)}"
