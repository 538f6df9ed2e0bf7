"""Webhook deliveries sent by the real notifier process to receivers on 127.0.0.1: signatures that the
reference `standardwebhooks` package verifies, retries with growing delays and one webhook-id, the
attempt limit, 410, disabling with an email to the owner, and a notifier killed mid-delivery."""

import json
import signal

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core import broker
from notifications.models import WebhookDelivery, WebhookEndpoint
from notifications.webhooks import endpoint_create
from tests.factories import job_create, user_create
from tests.support.pipeline import email_text, read_emails, shared_service_env
from tests.support.processes import manage_command, stop_process, wait_until
from tests.support.webhook_receiver import Receiver
from uploads.models import Job
from uploads.services.publishing import mp3_message_publish

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def notifier_env(tmp_path, **extra) -> dict[str, str]:
    return {
        **shared_service_env(tmp_path / "emails"),
        "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.4",
        "WEBHOOK_MAX_ATTEMPTS": "3",
        "WEBHOOK_POLL_SECONDS": "0.1",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_DISABLE_AFTER_FAILURES": "1",
        "WEBHOOK_DISABLE_AFTER_HOURS": "0",
        **extra,
    }


def done_job(owner) -> Job:
    job = job_create(owner=owner, original_filename="talk.mp4", status=Job.Status.DONE, mp3_file_id="m", mp3_size=5)
    mp3_message_publish(job.id)
    return job


def settled(endpoint: WebhookEndpoint) -> bool:
    return WebhookDelivery.objects.filter(endpoint=endpoint).exclude(state="pending").exists()


@pytest.fixture(autouse=True)
def receivers_on_loopback(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # in this process, to register them; the notifier's env too


def test_deliveries_are_signed_retried_with_one_webhook_id_and_failing_endpoints_disabled(mongodb, rabbitmq, tmp_path):
    broker.declare_queues()
    owner = user_create(email="hooks@example.com")
    events = ["job.done", "job.failed"]
    with (
        Receiver() as happy,
        Receiver([500, 502], then=200) as flaky,
        Receiver(then=503) as broken,
        Receiver(then=410) as gone,
    ):
        endpoints = {
            name: endpoint_create(owner=owner, url=receiver.url, events=events)
            for name, receiver in {"happy": happy, "flaky": flaky, "broken": broken, "gone": gone}.items()
        }
        notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **notifier_env(tmp_path))
        try:
            job = done_job(owner)
            assert wait_until(lambda: all(settled(e) for e in endpoints.values()), timeout=40), (
                tmp_path / "notifier.log"
            ).read_text()[-3000:]
        finally:
            stop_process(notifier)

    # Every request verifies with the reference implementation, with its endpoint's secret.
    for name, receiver in {"happy": happy, "flaky": flaky, "broken": broken, "gone": gone}.items():
        verifier = Webhook(endpoints[name].secret)
        for request in receiver.received:
            payload = verifier.verify(request.body, request.headers)
            assert payload["type"] == "job.done" and payload["data"]["job_id"] == str(job.id)
            assert payload["data"]["url"] == f"http://videomp3.test/jobs/{job.id}/"
    assert len(happy.received) == 1
    with pytest.raises(WebhookVerificationError):  # a tampered body does not verify
        Webhook(endpoints["happy"].secret).verify(happy.received[0].body + b" ", happy.received[0].headers)

    # Failing twice then succeeding: three attempts, one webhook-id, growing delays honoured.
    assert [r.headers["webhook-id"] for r in flaky.received] == [flaky.received[0].headers["webhook-id"]] * 3
    delivery = WebhookDelivery.objects.get(endpoint=endpoints["flaky"])
    attempts = list(delivery.attempts_made.order_by("number"))
    assert delivery.state == "delivered" and [a.status_code for a in attempts] == [500, 502, 200]
    planned = [a.retry_in_seconds for a in attempts[:2]]
    assert planned[0] < planned[1] and attempts[2].retry_in_seconds is None
    gaps = [later.at - earlier.at for earlier, later in zip(flaky.received, flaky.received[1:], strict=False)]
    assert all(gap >= wait for gap, wait in zip(gaps, planned, strict=True)), (gaps, planned)
    assert attempts[0].response_snippet == "answered 500" and all(a.latency_ms >= 0 for a in attempts)

    # Always failing: stops at the limit, each attempt logged, the endpoint disabled and its owner told.
    delivery = WebhookDelivery.objects.get(endpoint=endpoints["broken"])
    assert len(broken.received) == 3 and delivery.state == "failed"
    assert [a.status_code for a in delivery.attempts_made.all()] == [503, 503, 503]
    endpoints["broken"].refresh_from_db()
    assert not endpoints["broken"].enabled and "in a row" in endpoints["broken"].disabled_reason

    # 410: disabled at once, after one attempt.
    endpoints["gone"].refresh_from_db()
    assert len(gone.received) == 1 and not endpoints["gone"].enabled and "410" in endpoints["gone"].disabled_reason
    assert endpoints["happy"].enabled and endpoints["flaky"].enabled

    emails = read_emails(tmp_path / "emails")
    disabled = [m for m in emails if "disabled" in m["Subject"]]
    assert sorted(url for m in disabled for url in (broken.url, gone.url) if url in email_text(m)) == sorted(
        [broken.url, gone.url]
    )
    assert len([m for m in emails if "ready" in m["Subject"]]) == 1  # the email went out beside them


def test_a_slow_receiver_holds_up_nothing_and_a_notifier_killed_mid_delivery_resends_with_the_same_webhook_id(
    mongodb, rabbitmq, tmp_path
):
    broker.declare_queues()
    owner = user_create(email="killed@example.com")
    # Long enough to check the rest while the request is held (it would time out after this), short enough
    # that the claim a killed notifier leaves runs out soon (3 x 3 + 5 s).
    env = notifier_env(tmp_path, WEBHOOK_TIMEOUT_SECONDS="3")
    with Receiver() as receiver, Receiver() as other:
        endpoint = endpoint_create(owner=owner, url=receiver.url, events=["job.done"])
        other_endpoint = endpoint_create(owner=owner, url=other.url, events=["job.done"])
        receiver.hold.clear()  # the first request is taken and not answered
        notifier = manage_command(["run_notifier"], tmp_path / "notifier.log", **env)
        try:
            job = done_job(owner)
            assert wait_until(lambda: receiver.received, timeout=30)
            # While it holds its request, the other endpoint's delivery and the email go out.
            assert wait_until(lambda: settled(other_endpoint), timeout=20)
            assert wait_until(lambda: read_emails(tmp_path / "emails"), timeout=20)
            notifier.send_signal(signal.SIGKILL)
            assert not WebhookDelivery.objects.get(endpoint=endpoint).attempts_made.exists()  # killed mid-attempt
            notifier.wait(10)
            receiver.hold.set()
            notifier = manage_command(["run_notifier"], tmp_path / "notifier2.log", **env)
            assert wait_until(lambda: settled(endpoint), timeout=40), (tmp_path / "notifier2.log").read_text()[-3000:]
        finally:
            stop_process(notifier)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.state == "delivered"
    ids = {request.headers["webhook-id"] for request in receiver.received}
    assert ids == {delivery.message_id} and len(receiver.received) == 2  # the duplicate a receiver drops by id
    assert {json.loads(r.body)["data"]["job_id"] for r in receiver.received} == {str(job.id)}
    assert len(other.received) == 1
    emails = [m for m in read_emails(tmp_path / "emails") if str(job.id) in email_text(m)]
    assert len(emails) == 1  # recorded before the kill: no second email
