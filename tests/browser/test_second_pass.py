"""Issue #19 in Chromium: what a newcomer hit on the pages, driven the way they drove them."""

import pytest
from playwright.sync_api import expect

from tests.browser.test_ui import sign_in
from tests.factories import DEFAULT_PASSWORD, job_create, user_create
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_keyboard_sign_in_tabs_from_the_email_to_the_password(page, live_system):
    """Item 1, with the keyboard alone: Tab from Email lands on Password, not on "Forgot password?"."""
    user = user_create(email="keys@example.com")
    page.goto(live_system.url("/accounts/login/"))
    expect(page.get_by_label("Email address")).to_be_focused()  # autofocus
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password", exact=True)).to_be_focused()
    page.keyboard.type(DEFAULT_PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Forgot password?")).to_be_focused()  # still reachable, after the field
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(live_system.url("/"))
    expect(page.locator("[data-jobs]")).to_be_attached()  # signed in: the jobs page


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.CONVERTING, Job.Status.FAILED])
def test_the_job_page_of_a_job_that_is_not_done_shows_no_null(page, live_system, status):
    """Item 3: the job page drew its missing player as the word "null" under the status."""
    user = user_create()
    job = job_create(owner=user, original_filename="talk.mp4", status=status, error="It failed.", progress=40)
    sign_in(page, live_system, user.email, path=f"/jobs/{job.id}/")
    detail = page.locator("[data-job-detail]")
    expect(detail.locator(".badge")).to_be_visible()  # drawn by app.js
    expect(detail).not_to_contain_text("null")
