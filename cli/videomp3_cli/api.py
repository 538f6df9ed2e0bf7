"""The server's REST API over httpx: the access token sent with every request and refreshed by itself when
it has expired, and every failure turned into an exception with a sentence and the exit code it means."""

import threading

import httpx

from videomp3_cli import __version__, config

# Exit codes (the README's table).
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

TIMEOUT = httpx.Timeout(30.0, read=300.0)


class CliError(Exception):
    """Ends the command: str() is the sentence for the user, exit_code what the process returns."""

    exit_code = EXIT_SOME_FAILED


class UsageError(CliError):
    exit_code = EXIT_USAGE


class AuthError(CliError):
    exit_code = EXIT_AUTH


class Unreachable(CliError):
    exit_code = EXIT_UNREACHABLE


class ApiError(Exception):
    """The server refused a request: its own sentence (`detail`), code and status."""

    def __init__(self, response: httpx.Response):
        self.status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        self.body = body if isinstance(body, dict) else {}
        self.code = self.body.get("code", "")
        detail = self.body.get("detail") or f"The server answered {response.status_code} {response.reason_phrase}."
        self.retry_after = _seconds(response.headers.get("Retry-After"))
        super().__init__(detail)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def normalized_server(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"'{url}' is not a server address; give its URL, e.g. https://videomp3.example.com.")
    return url


def unreachable(server: str, exc: Exception) -> Unreachable:
    reason = str(exc) or type(exc).__name__
    return Unreachable(f"Cannot reach the server at {server} ({reason}); check the address and your network.")


def new_http_client(server: str) -> httpx.Client:
    return httpx.Client(
        base_url=server, timeout=TIMEOUT, headers={"User-Agent": f"videomp3-cli/{__version__}"}, follow_redirects=False
    )


def obtain_tokens(server: str, email: str, password: str) -> dict:
    """Sign in with a password: the credentials to keep. AuthError for a wrong password, Unreachable."""
    with new_http_client(server) as http:
        try:
            response = http.post("/api/auth/token/", json={"email": email, "password": password})
        except httpx.TransportError as exc:
            raise unreachable(server, exc) from None
    if response.status_code in (401, 429):
        raise AuthError(ApiError(response).args[0])
    if response.status_code != 200:
        raise Unreachable(
            f"{server} does not answer as a videomp3 server ({response.status_code} from /api/auth/token/); "
            "check the address."
        )
    tokens = response.json()
    return {"server": server, "email": email, "access": tokens["access"], "refresh": tokens["refresh"]}


class Session:
    """A signed-in client, shared by the threads of one command."""

    def __init__(self, credentials: dict):
        self.server = credentials["server"]
        self.credentials = dict(credentials)
        self.http = new_http_client(self.server)
        self._refresh_lock = threading.Lock()

    @classmethod
    def from_config(cls) -> "Session":
        credentials = config.load_credentials()
        if credentials is None:
            raise AuthError("You are not signed in; run: videomp3 login --server URL")
        return cls(credentials)

    def close(self) -> None:
        self.http.close()

    @property
    def access_token(self) -> str:
        return self.credentials["access"]

    def refresh(self, stale_access: str) -> None:
        """A new access token after `stale_access` was refused. Another thread or process may have refreshed
        already (the refresh token rotates, so only one of them can): then its tokens are taken instead."""
        with self._refresh_lock, config.locked():
            if self.credentials["access"] != stale_access:
                return  # another thread of this process did it
            stored = config.load_credentials()
            if stored and stored["server"] == self.server and stored["access"] != stale_access:
                self.credentials = stored  # another process did it
                return
            try:
                response = self.http.post("/api/auth/token/refresh/", json={"refresh": self.credentials["refresh"]})
            except httpx.TransportError as exc:
                raise unreachable(self.server, exc) from None
            if response.status_code != 200:
                raise AuthError(
                    f"Your sign-in has ended ({ApiError(response).args[0].rstrip('.')}); "
                    f"run: videomp3 login --server {self.server}"
                )
            tokens = response.json()
            self.credentials = {**self.credentials, "access": tokens["access"], "refresh": tokens["refresh"]}
            config.write_private_json(config.CREDENTIALS, self.credentials)

    def request(self, method: str, path: str, *, content_factory=None, **kwargs) -> httpx.Response:
        """One request with the access token, sent again once after a refresh when it had expired.
        content_factory() makes a body that can be sent again (a generator is used up by the first try)."""
        for attempt in (1, 2):
            token = self.access_token
            headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
            kwargs["headers"] = headers
            if content_factory is not None:
                kwargs["content"] = content_factory()
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise unreachable(self.server, exc) from None
            if response.status_code == 401 and attempt == 1:
                self.refresh(token)
                continue
            if response.status_code == 401:
                raise AuthError(f"{ApiError(response).args[0]} Run: videomp3 login --server {self.server}")
            return response
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kwargs):
        response = self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response)
        return response.json() if response.content else None

    def stream_to(self, path: str, write, *, on_bytes=None) -> None:
        """GET path, handing each piece of the body to write(); on_bytes(received, total) as it arrives."""
        for attempt in (1, 2):
            token = self.access_token
            try:
                with self.http.stream("GET", path, headers={"Authorization": f"Bearer {token}"}) as response:
                    if response.status_code == 401 and attempt == 1:
                        response.read()
                        self.refresh(token)
                        continue
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(response)
                    total = int(response.headers.get("Content-Length") or 0)
                    received = 0
                    for piece in response.iter_bytes(256 * 1024):
                        write(piece)
                        received += len(piece)
                        if on_bytes:
                            on_bytes(received, total)
                    return
            except httpx.TransportError as exc:
                raise unreachable(self.server, exc) from None
