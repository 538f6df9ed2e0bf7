"""A tus client process for tests: the reference Python client (tuspy) uploads one file chunk by chunk.

    python -m tests.support.tus_upload SERVER TOKEN FILE CHUNK_SIZE [UPLOAD_URL]

Without UPLOAD_URL it creates the upload; with it, it resumes there (from the offset HEAD gives). It prints
`url <upload url>`, then `offset <n>` after each chunk and waits for a line on stdin before the next one,
so a test can kill it at a chosen offset; at the end it prints `done <the last answer's body>`."""

import sys

from tusclient import client as tus


def main(server: str, token: str, path: str, chunk_size: str, url: str | None = None) -> None:
    uploader = tus.TusClient(f"{server}/api/uploads/", headers={"Authorization": f"Bearer {token}"}).uploader(
        path, url=url, chunk_size=int(chunk_size), metadata={"filename": path.rsplit("/", 1)[-1]}, upload_checksum=True
    )
    if not uploader.url:
        uploader.set_url(uploader.create_url())
    print("url", uploader.url, flush=True)
    while uploader.offset < uploader.get_file_size():
        uploader.upload_chunk()
        print("offset", uploader.offset, flush=True)
        if uploader.offset < uploader.get_file_size():
            sys.stdin.readline()
    print("done", uploader.request.response_content.decode(), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
