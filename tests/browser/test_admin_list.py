"""The admin's Job list in Chromium at 1280 px: human units, an error column, and no horizontal scrolling
(issue #19 item 12)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import DEFAULT_PASSWORD, job_create, user_create
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LONG_ERROR = (
    "The video has no audio track to convert. Choose a file with sound, or if the sound is in a separate "
    "file, upload that file instead; its length and format do not matter."
)


def jobs_of_people(now) -> dict[str, Job]:
    """Jobs as an operator finds them: long file names and long email addresses."""
    lecturer = user_create(email="maximiliane.oberhuber-schwarzenberger@conference-recordings.example.com")
    podcaster = user_create(email="the.podcast.producer.with.a.long.name@independent-media-collective.example.org")
    return {
        "done": job_create(
            owner=lecturer,
            original_filename="Quarterly all-hands meeting — full recording, final cut with Q&A (1080p, 2 hours).mp4",
            status=Job.Status.DONE,
            size=115_200_078,
            duration=7200.0,
            progress=100,
            mp3_file_id="mp3-done",
            mp3_size=57_600_000,
            mp3_duration=7200.0,
            started_at=now - timedelta(minutes=3),
            finished_at=now,
        ),
        "converting": job_create(
            owner=podcaster,
            original_filename="podcast-episode-112-interview-with-the-maintainers-of-a-long-named-project.webm",
            status=Job.Status.CONVERTING,
            size=734_003_200,
            duration=3725.5,
            progress=27,
            started_at=now,
        ),
        "failed": job_create(
            owner=lecturer,
            original_filename="lecture-07-thermodynamics-second-law-and-entropy-recorded-in-hall-B.mkv",
            status=Job.Status.FAILED,
            size=2_048,
            duration=59.0,
            error=LONG_ERROR,
            finished_at=now,
        ),
    }


def admin_sign_in(page, live_system):
    staff = user_create(email="operator@example.com", is_staff=True, is_superuser=True)
    page.goto(live_system.url("/admin/login/?next=/admin/uploads/job/"))
    page.locator("#id_username").fill(staff.email)
    page.locator("#id_password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(live_system.url("/admin/uploads/job/"))


def row(page, job: Job):
    return page.locator("#result_list tbody tr", has=page.get_by_role("link", name=job.original_filename))


def cell(page, job: Job, column: str):
    """The cell of a job's row under the column headed `column`."""
    headings = [text.strip().lower() for text in page.locator("#result_list thead th").all_text_contents()]
    index = headings.index(column.lower())
    return row(page, job).locator("th, td").nth(index)


@pytest.fixture
def admin_page(browser, live_system):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def test_the_job_list_shows_human_units_and_errors(admin_page, live_system):
    jobs = jobs_of_people(timezone.now())
    admin_sign_in(admin_page, live_system)

    # filesizeformat, the units the site uses elsewhere; hours:minutes:seconds.
    expect(cell(admin_page, jobs["done"], "Size")).to_have_text("109.9 MB")
    expect(cell(admin_page, jobs["done"], "Duration")).to_have_text("2:00:00")
    expect(cell(admin_page, jobs["converting"], "Duration")).to_have_text("1:02:06")  # halves round up, as on the pages
    expect(cell(admin_page, jobs["failed"], "Size")).to_have_text("2.0 KB")
    # Progress says something only while converting.
    expect(cell(admin_page, jobs["converting"], "Progress")).to_have_text("27 %")
    expect(cell(admin_page, jobs["done"], "Progress")).to_have_text("-")
    # The error, shortened to fit, in full on hover.
    error = cell(admin_page, jobs["failed"], "Error").locator("[title]")
    expect(error).to_have_attribute("title", LONG_ERROR)
    shown = error.inner_text()
    assert shown.endswith("…") and len(shown) < len(LONG_ERROR) and LONG_ERROR.startswith(shown[:-1])
    expect(cell(admin_page, jobs["done"], "Error")).to_have_text("-")


def test_the_job_list_fits_1280_px_without_horizontal_scrolling(admin_page, live_system):
    jobs_of_people(timezone.now())
    admin_sign_in(admin_page, live_system)
    expect(admin_page.locator("#result_list tbody tr")).to_have_count(3)
    page_width = admin_page.evaluate("document.documentElement.scrollWidth")
    table_right = admin_page.evaluate("document.querySelector('#result_list').getBoundingClientRect().right")
    viewport = admin_page.evaluate("document.documentElement.clientWidth")
    assert page_width <= 1280, f"the page scrolls sideways: {page_width} px wide"
    assert table_right <= viewport, f"the list's right edge is at {table_right} px, past the {viewport} px viewport"


@pytest.mark.parametrize(("column", "field"), [("Size", "size"), ("Duration", "duration"), ("Progress", "progress")])
def test_the_columns_still_sort(admin_page, live_system, column, field):
    jobs_of_people(timezone.now())
    admin_sign_in(admin_page, live_system)
    admin_page.locator("#result_list thead th", has_text=column).locator("div.text a").click()
    expect(admin_page).to_have_url(re.compile(r"\?o=\d"))
    names = [job.original_filename for job in Job.objects.order_by(field)]
    expect(admin_page.locator("#result_list tbody tr th a")).to_have_text(names)
