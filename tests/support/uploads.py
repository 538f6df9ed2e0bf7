"""Uploads through the API in-process (DRF's APIClient): one way for every test to POST a media file."""

import uuid
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile


def upload(client, path: Path, *, url="/api/jobs/", field="file", name=None, headers=None, **fields):
    """POST the file at `path` as multipart/form-data and return the response.

    url: where to (e.g. "/upload", or a query string of options); field: the form field the file goes in;
    name: a filename to send instead of the file's own; headers: request headers (e.g. {"Repr-Digest": …});
    fields: further form fields (output options, `options` JSON, title).
    """
    with open(path, "rb") as handle:
        file = handle if name is None else SimpleUploadedFile(name, handle.read(), "application/octet-stream")
        return client.post(url, {field: file, **fields}, format="multipart", headers=headers)


def upload_accepted(client, path: Path, **kwargs) -> dict:
    """upload(), which must be accepted (202); the job as the API describes it."""
    response = upload(client, path, **kwargs)
    assert response.status_code == 202, response.content
    return response.json()


def upload_unique(client, path: Path) -> str:
    """An accepted upload with a title of its own, so the same file uploaded again is converted again
    (no dedup); the job id."""
    return upload_accepted(client, path, title=uuid.uuid4().hex)["id"]
