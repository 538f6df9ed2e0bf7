"""A web process receives at most MAX_CONCURRENT_UPLOADS uploads at once: one more answers 503 with
Retry-After before its body is read, so a pod's /tmp cannot overflow and get it evicted."""

import urllib.request

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import user_create
from tests.support.processes import wait_until, web_server
from tests.support.slow_uploads import complete_empty_upload, headers_only_upload, held_upload

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 2


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
        # Below the cap an upload is served (an empty file: 422).
        assert complete_empty_upload(url, token) == 422
        with held_upload(url, token), held_upload(url, token) as last:
            # Once both held uploads are in their threads, the next one is refused.
            assert wait_until(lambda: complete_empty_upload(url, token) == 503, timeout=30)
            status, headers, body = headers_only_upload(url, token)
            assert status == 503, body
            assert headers["retry-after"] == "60"
            assert b"send the file again in 60 seconds" in body and b"uploads_at_capacity" in body
            # A request that is not an upload is still served.
            with urllib.request.urlopen(url + "/api/presets/", timeout=10) as response:
                assert response.status == 200
            last.close()
            # One held upload ended (its client went away): its slot is free again.
            assert wait_until(lambda: complete_empty_upload(url, token) == 422, timeout=30)
