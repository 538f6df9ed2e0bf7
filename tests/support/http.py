"""A tiny HTTP client over urllib for tests against real server processes (no extra dependency)."""

import base64
import json
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(
    method: str, url: str, *, body: bytes | None = None, headers: dict | None = None, timeout: float = 60
) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


def post_files(url: str, files: list[tuple[str, Path]], *, headers: dict | None = None) -> Reply:
    """multipart/form-data with the given (field, path) pairs."""
    boundary = uuid.uuid4().hex
    parts = []
    for field, path in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    all_headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})}
    return request("POST", url, body=body, headers=all_headers)
