"""A web process receives at most MAX_CONCURRENT_UPLOADS uploads at once, each reserving twice its size out of
UPLOAD_SPOOL_BYTES: one more answers 503 with Retry-After before its body is read, so a pod's threads are not
all taken by uploads and its /tmp cannot overflow and get it evicted."""

import urllib.request

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import user_create
from tests.support.processes import wait_until, web_server
from tests.support.slow_uploads import complete_empty_upload, headers_only_upload, held_upload

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 2
# Past what a body may have without counting (a preflight check, a short clip: uploads.middleware).
COUNTED = 5 * 1024**2


def spooling(upload_dir) -> int:
    """Uploads whose file part is being spooled (Django's temp files): taken in, past the capacity check."""
    return len(list(upload_dir.glob("*.upload*")))


def test_one_upload_past_the_cap_gets_503_with_retry_after_before_its_body(tmp_path, mongodb, settings):
    token = str(AccessToken.for_user(user_create()))
    with web_server(
        tmp_path / "web.log",
        threads=CAP + 2,
        MAX_CONCURRENT_UPLOADS=str(CAP),
        MONGODB_URI=settings.MONGODB_URI,
        MONGODB_DB=settings.MONGODB_DB,
        FILE_UPLOAD_TEMP_DIR=str(tmp_path),
    ) as url:
        # Below the cap an upload is served (a file of zeros: 422).
        assert complete_empty_upload(url, token, zeros=COUNTED) == 422
        with held_upload(url, token), held_upload(url, token) as last:
            # Once both held uploads are spooling (so neither can be refused by an upload sent meanwhile),
            # the next one is refused; a small one is not counted.
            assert wait_until(lambda: spooling(tmp_path) == 2, timeout=30)
            assert complete_empty_upload(url, token, zeros=COUNTED) == 503
            assert complete_empty_upload(url, token) == 422
            status, headers, body = headers_only_upload(url, token)
            assert status == 503, body
            assert headers["retry-after"] == "10"
            assert b"send the file again in 10 seconds" in body and b"uploads_at_capacity" in body
            # A request that is not an upload is still served.
            with urllib.request.urlopen(url + "/api/presets/", timeout=10) as response:
                assert response.status == 200
            last.close()
            # One held upload ended (its client went away): its slot is free again.
            assert wait_until(lambda: complete_empty_upload(url, token, zeros=COUNTED) == 422, timeout=30)


def test_uploads_share_the_spool_budget_by_their_size(tmp_path, mongodb, settings):
    """Small uploads go through beside a large one; a second large one waits for room on the disk."""
    token = str(AccessToken.for_user(user_create()))
    with web_server(
        tmp_path / "web.log",
        threads=6,
        MAX_CONCURRENT_UPLOADS="4",
        UPLOAD_SPOOL_BYTES=str(200 * 1024**2),
        MONGODB_URI=settings.MONGODB_URI,
        MONGODB_DB=settings.MONGODB_DB,
        FILE_UPLOAD_TEMP_DIR=str(tmp_path),
    ) as url:
        with held_upload(url, token, announced_size=64 * 1024**2):  # reserves 128 MiB of the 200
            # Once it is in, 40 MiB more (80 reserved) does not fit beside it; 5 MiB (10) does.
            assert wait_until(lambda: spooling(tmp_path) == 1, timeout=30)
            assert complete_empty_upload(url, token, zeros=40 * 1024**2) == 503
            status, headers, body = headers_only_upload(url, token, announced_size=40 * 1024**2)
            assert status == 503 and headers["retry-after"] == "10", body
            assert complete_empty_upload(url, token, zeros=COUNTED) == 422
        # The large upload's client went away: its room is free again.
        assert wait_until(lambda: complete_empty_upload(url, token, zeros=40 * 1024**2) == 422, timeout=30)
