"""A small SMTP server on 127.0.0.1 for the notifier's fault tests: it can answer normally, slowly, or
accept connections and never answer. Messages it accepts are kept in `messages` (raw bytes)."""

import socket
import threading
import time


class SmtpServer:
    def __init__(self, *, port: int = 0, mode: str = "normal", delay: float = 0.0):
        self.mode = mode  # "normal", "slow" (each reply waits `delay` s) or "silent"
        self.delay = delay
        self.messages: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _reply(self, connection, line: str) -> None:
        if self.mode == "slow":
            time.sleep(self.delay)
        connection.sendall(line.encode() + b"\r\n")

    def _session(self, connection: socket.socket) -> None:
        with connection:
            if self.mode == "silent":  # accepted, and never a word: what a wedged server does
                self._stop.wait()
                return
            reader = connection.makefile("rb")
            self._reply(connection, "220 test ESMTP")
            while not self._stop.is_set():
                line = reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    self._reply(connection, "250 test")
                elif verb == b"DATA":
                    self._reply(connection, "354 go ahead")
                    body = b""
                    while (chunk := reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.messages.append(body)
                    self._reply(connection, "250 queued")
                elif verb == b"QUIT":
                    self._reply(connection, "221 bye")
                    return
                else:  # MAIL, RCPT, RSET, NOOP
                    self._reply(connection, "250 ok")
