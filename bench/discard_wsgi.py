"""The upload benchmark's baseline: a WSGI app that reads the request body in 1 MiB pieces and throws it away.

Served by the same gunicorn config as the web role (docker/gunicorn.conf.py), so the difference between
the two is what the web role does with an upload (multipart parsing, spooling, hashing, probing, audio
extraction, cover frame, GridFS, database), not the HTTP server or the network:

    gunicorn -c docker/gunicorn.conf.py bench.discard_wsgi:application
"""

import json

CHUNK = 1024 * 1024


def application(environ, start_response):
    body = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    received = 0
    while remaining > 0:
        piece = body.read(min(CHUNK, remaining))
        if not piece:
            break
        received += len(piece)
        remaining -= len(piece)
    answer = json.dumps({"discarded": received}).encode()
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
    return [answer]
