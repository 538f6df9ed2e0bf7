"""Issue #6 in Chromium: the Swagger UI and the app's pages run under the Content-Security-Policy header
(the `page` fixture fails a test on any CSP report in the console), and the pages say when files expire."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.test_ui import job_row, sign_in
from tests.factories import job_create, user_create
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_under_the_csp_header(page, live_system):
    response = page.goto(live_system.url("/api/docs/"))
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    # The operations come from /api/schema/, fetched and drawn by Swagger UI's own (file-served) script.
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    expect(page.get_by_text("/api/jobs/{job_id}/mp3", exact=True).first).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/jobs/{job_id}/mp3").first.click()
    expect(page.get_by_text("Parameters").first).to_be_visible()
    assert not page.problems


def test_the_pages_say_when_files_expire_and_why_a_job_expired(page, live_system):
    user = user_create(email="keeper@example.com")
    finished = timezone.now() - timedelta(days=1)
    done = job_create(
        owner=user,
        original_filename="keynote.mp4",
        size=1000,
        status=Job.Status.DONE,
        progress=100,
        mp3_file_id="mp3-none",
        mp3_size=500,
        duration=3.0,
        mp3_duration=3.0,
        finished_at=finished,
    )
    job_create(
        owner=user,
        original_filename="old-talk.mp4",
        size=1000,
        status=Job.Status.EXPIRED,
        error="This job's files were deleted on 2026-11-01: this server keeps finished files for 7 days. "
        "Upload the video again to convert it again.",
        finished_at=finished - timedelta(days=30),
    )
    sign_in(page, live_system, user.email)
    expect(job_row(page, "keynote.mp4").locator("[data-expires]")).to_have_text("deleted in 6 days")
    expect(job_row(page, "old-talk.mp4")).to_contain_text("this server keeps finished files for 7 days")
    page.goto(live_system.url(f"/jobs/{done.id}/"))
    expires = (finished + timedelta(days=7)).strftime("%b %-d, %Y")
    expect(page.locator("dl.facts")).to_contain_text(re.compile(r"Files kept until\s*" + re.escape(expires)))
