#!/usr/bin/env python3
"""A minimal SMTP server for docker/image-check: `smtp_capture.py PORT DIR` writes each message to DIR.

The image check has no mail server to send to, and Python 3.11's smtpd is deprecated (gone in
3.12), so this speaks just the plain-text SMTP that Django's SMTP backend uses without TLS or
login: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT. Listens on the loopback only.
"""

import asyncio
import itertools
import sys
from pathlib import Path

_message_numbers = itertools.count(1)


async def _session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbox: Path) -> None:
    def reply(line: str) -> None:
        writer.write(line.encode() + b"\r\n")

    reply("220 image-check SMTP capture")
    envelope: list[str] = []
    while line := await reader.readline():
        command = line.decode(errors="replace").strip()
        verb = command[:4].upper()
        if verb == "EHLO":
            reply("250-image-check")
            reply("250 8BITMIME")
        elif verb in {"HELO", "NOOP"}:
            reply("250 OK")
        elif verb in {"MAIL", "RCPT"}:
            envelope.append(command)
            reply("250 OK")
        elif verb == "RSET":
            envelope.clear()
            reply("250 OK")
        elif verb == "DATA":
            reply("354 End data with <CR><LF>.<CR><LF>")
            await writer.drain()
            body = bytearray()
            while (data_line := await reader.readline()) not in (b".\r\n", b".\n", b""):
                # Dot-stuffing: a line that starts with "." was sent with one more.
                body += data_line[1:] if data_line.startswith(b"..") else data_line
            path = outbox / f"{next(_message_numbers):04d}.eml"
            path.write_bytes("\r\n".join(envelope).encode() + b"\r\n\r\n" + bytes(body))
            envelope.clear()
            print(f"captured {path}", flush=True)
            reply("250 OK: queued")
        elif verb == "QUIT":
            reply("221 Bye")
            await writer.drain()
            break
        else:
            reply("502 Command not implemented")
        await writer.drain()
    writer.close()


async def main(port: int, outbox: Path) -> None:
    outbox.mkdir(parents=True, exist_ok=True)
    server = await asyncio.start_server(lambda r, w: _session(r, w, outbox), "127.0.0.1", port)
    print(f"SMTP capture on 127.0.0.1:{port}, messages in {outbox}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2])))
