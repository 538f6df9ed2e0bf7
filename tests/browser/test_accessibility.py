"""axe-core finds no accessibility violations on the pages, at a desktop and a phone width (issue #19 item 11).

axe-core is vendored under tests/browser/vendor/axe-core (the npm package, MPL-2.0, its LICENSE beside it):
the PyPI wrapper axe-playwright-python carries an older axe (4.12) than the 4.14 the issue was found with.
It is injected with page.evaluate, which runs outside the page's Content-Security-Policy, so the page is
audited under its real policy: bypass_csp would also let through inline styles the site's CSP blocks,
and axe would then measure colours and sizes no visitor sees.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.test_ui import sign_in
from tests.factories import job_create, user_create
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE_SCRIPT = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": 1280, "phone": 390}
# Names a person's files have, long enough to wrap or be shortened at 390 px.
FILENAMES = [
    "Quarterly all-hands meeting — full recording (final, with Q&A).mp4",
    "lecture-07-thermodynamics.mkv",
    "IMG_4821.MOV",
    "podcast episode 112 – interview with the maintainers of a very long-named project.webm",
    "birthday.avi",
]
MIXED_STATUSES = [
    Job.Status.QUEUED,
    Job.Status.CONVERTING,
    Job.Status.DONE,
    Job.Status.FAILED,
    Job.Status.CANCELLED,
    Job.Status.EXPIRED,
]


def mixed_jobs(owner, count: int = 20) -> list[Job]:
    """Jobs in every state as the converter leaves them. A done job's player only needs its MP3 URL:
    axe audits the markup, so no MP3 is stored."""
    now = timezone.now()
    jobs = []
    for number in range(count):
        status = MIXED_STATUSES[number % len(MIXED_STATUSES)]
        fields = {
            "original_filename": FILENAMES[number % len(FILENAMES)],
            "status": status,
            "size": 48_000_000 + number * 7_654_321,
            "duration": 600.0 + number * 37,
            "container": "mov,mp4,m4a,3gp,3g2,mj2",
            "audio_codec": "aac",
            "video_codec": "h264",
        }
        if status == Job.Status.CONVERTING:
            fields.update(progress=27 + number, started_at=now)
        elif status == Job.Status.DONE:
            fields.update(
                mp3_file_id=f"mp3-{number}",
                mp3_size=9_000_000 + number * 1000,
                mp3_duration=fields["duration"],
                started_at=now - timedelta(minutes=2),
                finished_at=now,
            )
        elif status == Job.Status.FAILED:
            fields.update(error="The video has no audio track to convert: choose a file with sound.", finished_at=now)
        elif status in (Job.Status.CANCELLED, Job.Status.EXPIRED):
            fields.update(finished_at=now)
        jobs.append(job_create(owner=owner, **fields))
    return jobs


def open_jobs_page_empty(page, live_system):
    sign_in(page, live_system, user_create().email)
    expect(page.locator("[data-jobs]")).to_be_attached()


def open_jobs_page_mixed(page, live_system):
    user = user_create()
    mixed_jobs(user)
    sign_in(page, live_system, user.email)
    expect(page.locator("li.job")).to_have_count(20)  # drawn by app.js


def open_job_page(page, live_system):
    user = user_create()
    done = next(job for job in mixed_jobs(user, count=3) if job.status == Job.Status.DONE)
    sign_in(page, live_system, user.email, path=f"/jobs/{done.id}/")
    expect(page.locator("[data-job-detail] .badge")).to_be_visible()  # drawn by app.js


def open_not_found_page(page, live_system):
    """The app's 404 page, signed in so that it carries the account menu as well.

    The live system runs with DEBUG on, where Django answers an unknown address with its own technical
    page; so the page is rendered here with DEBUG off, as production renders it, and handed to the
    browser at the live address with its headers (its CSP too), its CSS and JS then coming from there.
    """
    client = Client()
    client.force_login(user_create())
    with override_settings(DEBUG=False):
        response = client.get("/no-such-page/")
    assert response.status_code == 404
    page.route(
        live_system.url("/no-such-page/"),
        lambda route: route.fulfill(status=404, headers=dict(response.headers), body=response.content),
    )
    page.goto(live_system.url("/no-such-page/"))
    expect(page.get_by_role("heading", name="We can't find that page")).to_be_visible()


def open_account_page(page, live_system):
    sign_in(page, live_system, user_create().email, path="/accounts/")
    expect(page.get_by_role("heading", name="Account")).to_be_visible()


def open_webhooks_page(page, live_system):
    """An endpoint just added (its secret shown), and a disabled one with a failed delivery and its attempts."""
    from django.utils import timezone

    from notifications.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

    user = user_create()
    endpoint = WebhookEndpoint.objects.create(
        owner=user,
        url="https://hooks.example.com/videomp3",
        events=["job.done", "job.failed"],
        secret="whsec_c2VjcmV0",
        enabled=False,
        disabled_reason="The endpoint answered 410 Gone, which asks for no more deliveries.",
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        job_id="6f1c2f44-0d1e-4d7a-9d55-5d1b0b1e2c3a",
        event_type="job.done",
        message_id="msg_0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        payload={},
        state="failed",
        attempts=2,
    )
    for number, status in ((1, 503), (2, 410)):
        WebhookAttempt.objects.create(
            delivery=delivery, number=number, started_at=timezone.now(), status_code=status, latency_ms=31
        )
    sign_in(page, live_system, user.email, path="/accounts/webhooks/")
    page.get_by_label("URL").fill("https://example.org/hook")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_label("Signing secret", exact=True)).to_be_visible()


def open_signed_out(path):
    def open_page(page, live_system):
        response = page.goto(live_system.url(path))
        assert response.status == 200, path

    return open_page


PAGES = {
    "sign-in": open_signed_out("/accounts/login/"),
    "sign-up": open_signed_out("/accounts/signup/"),
    "password-reset": open_signed_out("/accounts/password/reset/"),
    "password-reset-sent": open_signed_out("/accounts/password/reset/sent/"),
    "password-reset-complete": open_signed_out("/accounts/password/reset/done/"),
    "jobs-empty": open_jobs_page_empty,
    "jobs-20-mixed": open_jobs_page_mixed,
    "job": open_job_page,
    "not-found": open_not_found_page,
    "account": open_account_page,
    "webhooks": open_webhooks_page,
}


def axe_violations(page) -> list[dict]:
    page.evaluate(AXE_SCRIPT.read_text())
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return results["violations"]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = " ".join(node["failureSummary"].split())
            lines.append(f"  {' '.join(node['target'])}: {summary}")
    return "\n".join(lines)


@pytest.fixture(params=WIDTHS.values(), ids=WIDTHS.keys())
def sized_page(request, browser, live_system):
    context = browser.new_context(viewport={"width": request.param, "height": 820}, locale="en-US")
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("name", PAGES)
def test_axe_finds_no_violations(sized_page, live_system, name):
    PAGES[name](sized_page, live_system)
    sized_page.wait_for_load_state()
    violations = axe_violations(sized_page)
    assert not violations, f"axe-core on {name} at {sized_page.viewport_size['width']} px:\n{describe(violations)}"
