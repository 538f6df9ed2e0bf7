"""Sending one webhook POST: the only module that talks HTTP to users' endpoints (through urllib3).

A URL's host is resolved once, every address it resolves to is checked, and the connection goes to the
checked address itself (the Host header and TLS's SNI and certificate check still name the host), so a
name that answers a public address to the check and 127.0.0.1 to the connect (DNS rebinding) never
reaches 127.0.0.1. Loopback, private, link-local, shared, multicast and reserved addresses are refused
unless WEBHOOK_ALLOW_PRIVATE_ADDRESSES. Redirects are not followed: a 3xx is an answer like any other.
Connect and read are each bounded by the timeout, and at most SNIPPET_BYTES of the answer are read.
"""

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError, LocationParseError

SNIPPET_BYTES = 1024

# (host, port) -> the addresses it resolves to. The one seam where tests put a resolver of their own.
Resolver = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


resolve: Resolver = system_resolve


class BlockedAddress(Exception):
    """The URL's host is, or resolves to, an address deliveries may not go to; str() is a sentence."""


@dataclass(frozen=True)
class Answer:
    """What one POST got: a status and the start of the body, or an error sentence (status None)."""

    status: int | None
    snippet: str
    latency_ms: int
    error: str = ""
    blocked: bool = False


def address_allowed(address: str, *, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if allow_private:
        return not ip.is_multicast and not ip.is_unspecified
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def vetted_address(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to: the first the host resolves to, once every one of them is allowed."""
    try:
        addresses = [literal_address(host)] if literal_address(host) else resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise OSError(f"{host} could not be resolved ({exc})") from None
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    for address in addresses:
        if not address_allowed(address, allow_private=allow_private):
            raise BlockedAddress(
                f"{host} resolves to {address}, a loopback, private or reserved address; "
                "webhooks only go to public addresses."
            )
    return addresses[0]


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> Answer:
    """POST body to url once, to the vetted address, without following redirects."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        parsed = urllib3.util.parse_url(url)
    except LocationParseError:
        return Answer(None, "", 0, error="The URL cannot be parsed.")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return Answer(None, "", 0, error="Only http:// and https:// URLs with a host can receive webhooks.")
    host = parsed.host.strip("[]")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        address = vetted_address(host, port, allow_private=allow_private)
    except BlockedAddress as exc:
        return Answer(None, "", elapsed(), error=str(exc), blocked=True)
    except OSError as exc:
        return Answer(None, "", elapsed(), error=str(exc))
    default_port = port == (443 if parsed.scheme == "https" else 80)
    host_header = (f"[{host}]" if ":" in host else host) + ("" if default_port else f":{port}")
    bounds = urllib3.Timeout(connect=timeout, read=timeout)
    if parsed.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=bounds,
            retries=False,
            maxsize=1,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=bounds, retries=False, maxsize=1)
    try:
        response = pool.urlopen(
            "POST",
            parsed.request_uri,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            snippet = response.read(SNIPPET_BYTES, decode_content=False)
        finally:
            response.release_conn()
        return Answer(response.status, snippet.decode("utf-8", "replace"), elapsed())
    except (HTTPError, OSError) as exc:
        return Answer(None, "", elapsed(), error=_error_sentence(exc, timeout))
    finally:
        pool.close()


def _error_sentence(exc: Exception, timeout: float) -> str:
    text = str(exc)
    if "timed out" in text.lower() or isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError):
        return f"No answer within {timeout:g} s (timed out)."
    if "refused" in text.lower():
        return "The connection was refused."
    return f"{type(exc).__name__}: {text}"[:300]
