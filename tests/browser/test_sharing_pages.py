"""Share links and the podcast feed in Chromium (issue #16), against the live web role and converter:
the owner makes a share link on the job page and turns it off; a visitor who is not signed in plays and
downloads from the share page, whose player fetches nothing before Play; the feed page shows the address
with a copy button and a QR code, and revoking it turns the feed off. axe-core checks the share and feed
pages at both widths; the screenshots go in docs/screenshots/."""

import re

import feedparser
import pytest
from playwright.sync_api import expect

from core import storage
from tests.browser.conftest import named_media, screenshot
from tests.browser.test_accessibility import WIDTHS, axe_violations, describe
from tests.browser.test_ui import sign_in
from tests.factories import uploaded_job, user_create
from tests.support import media
from tests.support.http import request as http_request
from tests.support.pipeline import wait_for_job
from tests.support.processes import wait_until
from uploads.models import Job

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def done_job(live_system, owner, path, **options) -> Job:
    """A job uploaded through the service and converted by the live converter."""
    job = uploaded_job(path, owner=owner, **options)
    return wait_for_job(job.id, lambda j: j.status == Job.Status.DONE)


def assert_no_axe_violations(page, name: str) -> None:
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 820})
        violations = axe_violations(page)
        assert not violations, f"axe-core on {name} at {width} px:\n{describe(violations)}"
    page.set_viewport_size({"width": 1100, "height": 820})


def test_share_a_job_play_and_download_it_signed_out_then_turn_the_link_off(page, browser, live_system):
    owner = user_create(email="owner@example.com")
    talk = named_media(live_system.media_dir, "mp4_faststart", "quarterly-review.mp4", seconds=4.0)
    job = done_job(live_system, owner, talk, title="Quarterly review")

    sign_in(page, live_system, owner.email, path=f"/jobs/{job.id}/")
    shares = page.get_by_role("region", name="Share links")
    shares.get_by_label("Link works for").select_option(label="3 days")
    shares.get_by_role("button", name="Create share link").click()
    expect(page.get_by_text("The share link is ready")).to_be_visible()
    address = shares.get_by_label("Share link 1", exact=True)
    expect(address).to_have_value(re.compile(re.escape(live_system.url("/s/")) + r"[A-Za-z0-9_-]{43}$"))
    share_url = address.input_value()
    shares.get_by_role("button", name="Copy").click()
    expect(shares.get_by_role("status")).to_have_text(re.compile("Copied|Selected"))
    screenshot(page, "job-share-links")

    # A visitor with no account.
    visitor_context = browser.new_context(viewport={"width": 1100, "height": 820}, accept_downloads=True)
    visitor = visitor_context.new_page()
    csp_problems = []
    visitor.on("console", lambda m: csp_problems.append(m.text) if "Content Security Policy" in m.text else None)
    audio_requests = []
    visitor.on("request", lambda r: audio_requests.append(r.url) if r.url.endswith("/mp3") else None)
    try:
        visitor.goto(share_url)
        expect(visitor.get_by_role("heading", name="Quarterly review")).to_be_visible()
        expect(visitor.get_by_text("owner@example.com")).to_have_count(0)
        visitor.wait_for_load_state("networkidle")
        assert audio_requests == []  # nothing of the MP3 before Play
        screenshot(visitor, "share-page")
        assert_no_axe_violations(visitor, "the share page")

        player = visitor.get_by_label("Play Quarterly review")
        player.evaluate("audio => audio.play()")
        # (wait_for_function would evaluate a string, which the page's CSP forbids.)
        assert wait_until(lambda: player.evaluate("audio => audio.currentTime") > 0.2, timeout=15), "it plays"
        assert audio_requests, "playing fetched the MP3"
        player.evaluate("audio => audio.pause()")

        with visitor.expect_download() as download_info:
            visitor.get_by_role("link", name=re.compile("Download MP3")).click()
        with storage.open_file(storage.MP3S, job.mp3_file_id) as stored:
            assert open(download_info.value.path(), "rb").read() == stored.read()
        assert download_info.value.suggested_filename == "quarterly-review.mp3"

        # The owner turns the link off: the visitor's next visit is a 410 with a sentence.
        page.get_by_role("button", name="Turn off share link 1").click()
        expect(page.get_by_text("The share link was turned off")).to_be_visible()
        expect(page.get_by_text(re.compile("^Turned off on"))).to_be_visible()
        response = visitor.goto(share_url)
        assert response.status == 410
        expect(visitor.get_by_text("This share link was turned off by the person who shared it.")).to_be_visible()
        assert http_request("GET", share_url + "/mp3").status == 410
    finally:
        visitor_context.close()
    assert not csp_problems, csp_problems


def test_the_feed_page_gives_the_address_with_a_copy_button_and_a_qr_code_and_revokes_it(page, live_system):
    owner = user_create(email="listener@example.com")
    done_job(live_system, owner, media.make_media(live_system.media_dir, "wav_pcm"), title="Morning notes")
    sign_in(page, live_system, owner.email)
    page.get_by_label(re.compile("^Account menu")).click()
    page.get_by_role("link", name="Podcast feed").click()
    expect(page.get_by_role("heading", name="Your podcast feed")).to_be_visible()
    page.get_by_role("button", name="Make my feed address").click()
    expect(page.get_by_text("Your feed is ready")).to_be_visible()

    address = page.get_by_label("Feed address", exact=True)
    expect(address).to_have_value(re.compile(re.escape(live_system.url("/feeds/")) + r"[A-Za-z0-9_-]{43}\.xml$"))
    feed_url = address.input_value()
    expect(page.get_by_role("img", name=re.compile("QR code of your feed address"))).to_be_visible()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text=re.compile("Copied|Selected"))).to_be_visible()
    expect(page.get_by_text(re.compile("Revoking turns the address off at once"))).to_be_visible()
    screenshot(page, "podcast-feed")
    assert_no_axe_violations(page, "the feed page")

    # What a podcast app fetches, with no cookie and no header.
    feed = http_request("GET", feed_url)
    assert feed.status == 200
    entries = feedparser.parse(feed.body).entries
    assert [entry.title for entry in entries] == ["Morning notes"]
    enclosure = entries[0].enclosures[0].href

    page.get_by_role("button", name="Revoke the feed").click()
    expect(page.get_by_text("Your feed was revoked")).to_be_visible()
    expect(page.get_by_role("button", name="Make my feed address")).to_be_visible()
    assert http_request("GET", feed_url).status == 404
    assert http_request("GET", enclosure).status == 404
