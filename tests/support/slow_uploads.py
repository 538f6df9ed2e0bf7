"""Uploads sent by hand over raw sockets, so a test decides when (and whether) the body ends."""

import contextlib
import socket
from urllib.parse import urlsplit

BOUNDARY = "videomp3-slow-upload"


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname, parts.port


def _head(token: str, content_length: int, path: str = "/api/jobs/") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n"
    ).encode()


def _file_part_start(name: str = "video.mp4") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and as much body as Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


@contextlib.contextmanager
def held_upload(base_url: str, token: str, *, announced_size: int = 64 * 1024**2):
    """An upload whose headers and first bytes are sent and whose body then stalls: it holds a gunicorn
    thread (and an upload slot) until the block ends and the socket closes."""
    sock = socket.create_connection(_address(base_url), timeout=30)
    try:
        # Past the upload handler's 1 MiB read, so its file part is opened (spooled) at once.
        sock.sendall(_head(token, announced_size) + _file_part_start() + b"\0" * (2 * 1024**2))
        yield sock
    finally:
        sock.close()


def headers_only_upload(base_url: str, token: str, *, announced_size: int = 1024**3) -> tuple[int, dict, bytes]:
    """An upload that announces a large body and sends none of it: only a server that answers before
    reading the body can reply."""
    with socket.create_connection(_address(base_url), timeout=30) as sock:
        sock.sendall(_head(token, announced_size))
        return read_response(sock)


def complete_empty_upload(base_url: str, token: str, *, zeros: int = 0) -> int:
    """A whole upload of a file of `zeros` zero bytes (none: empty): answered 422 when it was taken in (not
    a video), 503 when the server had no room for it.

    The body goes only once the headers drew no answer for a moment. A busy server may still answer
    before it while the body is being sent; it then closes the connection, and the send fails with the
    answer already received."""
    body = _file_part_start() + b"\0" * zeros + f"\r\n--{BOUNDARY}--\r\n".encode()
    with socket.create_connection(_address(base_url), timeout=30) as sock:
        sock.sendall(_head(token, len(body)))
        sock.settimeout(1.5)
        try:
            early = sock.recv(65536, socket.MSG_PEEK)
        except TimeoutError:
            early = b""
        sock.settimeout(30)
        if not early:
            try:
                sock.sendall(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered before the whole body: the answer is read below
        return read_response(sock)[0]
