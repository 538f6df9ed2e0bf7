"""The webhooks page in headless Chromium against the live system: add an endpoint, copy its secret
(shown once), see a job's delivery arrive signed and listed with its attempt, redeliver it with the same
webhook-id, and rotate the secret. The run leaves docs/screenshots/webhooks.png."""

import re

import pytest
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from tests.browser.conftest import screenshot
from tests.browser.test_ui import sign_in
from tests.factories import job_create, user_create
from tests.support.processes import wait_until
from tests.support.webhook_receiver import Receiver
from uploads.models import Job
from uploads.services.publishing import mp3_message_publish

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_add_an_endpoint_see_its_signed_delivery_and_redeliver_it(page, live_system):
    user = user_create(email="hooks@example.com")
    with Receiver() as receiver:
        sign_in(page, live_system, user.email)
        page.get_by_label(re.compile("^Account menu")).click()
        page.get_by_role("link", name="Webhooks").click()
        expect(page.get_by_role("heading", name="Webhooks", level=1)).to_be_visible()
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("job.expired").check()
        page.get_by_label("Description (optional)").fill("Tell the build server")
        page.get_by_role("button", name="Add endpoint").click()
        secret = page.get_by_label("Signing secret", exact=True).input_value()
        assert secret.startswith("whsec_")

        job = job_create(
            owner=user, original_filename="interview.mp4", status=Job.Status.DONE, mp3_file_id="m", mp3_size=5
        )
        mp3_message_publish(job.id)
        assert wait_until(lambda: receiver.received, timeout=30), live_system.logs()
        first = receiver.received[0]
        assert Webhook(secret).verify(first.body, first.headers)["data"]["job_id"] == str(job.id)

        page.reload()  # the secret is gone now; the delivery is listed
        expect(page.get_by_label("Signing secret", exact=True)).to_have_count(0)
        row = page.get_by_role("row", name=first.headers["webhook-id"])
        expect(row).to_contain_text("delivered")
        expect(row).to_contain_text("200")
        screenshot(page, "webhooks")

        row.get_by_role("button", name="Redeliver").click()
        expect(page.get_by_text("queued again, with the same webhook-id")).to_be_visible()
        assert wait_until(lambda: len(receiver.received) == 2, timeout=30)
        assert receiver.received[1].headers["webhook-id"] == first.headers["webhook-id"]

        page.get_by_role("button", name="Rotate secret").click()
        rotated = page.get_by_label("Signing secret", exact=True).input_value()
        assert rotated.startswith("whsec_") and rotated != secret
