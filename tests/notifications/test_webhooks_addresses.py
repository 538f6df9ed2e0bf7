"""Where deliveries may go, through the sending module's one resolver seam and receivers on 127.0.0.1:
a private address is refused unless allowed, DNS rebinding cannot reach 127.0.0.1, a redirect is not
followed. Each case runs one attempt in this process (delivery_attempt, what the notifier's threads run)."""

import uuid

import pytest

from notifications import webhook_http, webhooks
from notifications.models import WebhookDelivery, WebhookEndpoint
from tests.factories import user_create
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

PUBLIC = "1.1.1.1"  # a global address: what the rebinding name tells the check


@pytest.fixture
def resolver(monkeypatch):
    """Replace the seam: answers queued per call, and every call recorded."""
    calls, answers = [], []

    def resolve(host, port):
        calls.append(host)
        return [answers.pop(0) if answers else "127.0.0.1"]

    monkeypatch.setattr(webhook_http, "resolve", resolve)
    return calls, answers


def delivery_to(url: str) -> WebhookDelivery:
    endpoint = WebhookEndpoint.objects.create(
        owner=user_create(), url=url, events=["job.done"], secret=webhooks.secret_generate()
    )
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        job_id="6f1c2f44-0d1e-4d7a-9d55-5d1b0b1e2c3a",
        event_type="job.done",
        message_id=f"msg_{uuid.uuid4().hex}",
        payload={"type": "job.done", "data": {}},
    )


def test_a_name_that_resolves_to_a_private_address_is_refused_unless_allowed(resolver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    with Receiver() as receiver:
        delivery = delivery_to(f"http://hooks.internal.test:{receiver.port}/hook")
        assert webhooks.delivery_attempt(delivery_id=delivery.id) == "failed"  # not retried: it would be refused again
        (attempt,) = delivery.attempts_made.all()
        assert attempt.status_code is None and "127.0.0.1" in attempt.error and "public addresses" in attempt.error
        assert receiver.received == []
        settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
        allowed = delivery_to(f"http://hooks.internal.test:{receiver.port}/hook")
        assert webhooks.delivery_attempt(delivery_id=allowed.id) == "delivered"
        assert (
            len(receiver.received) == 1
            and receiver.received[0].headers["host"] == f"hooks.internal.test:{receiver.port}"
        )


def test_dns_rebinding_never_reaches_127_0_0_1(resolver, settings):
    """The name answers a public address to the first lookup and 127.0.0.1 to every later one. The
    connection goes to the address that was checked, so there is no second lookup to rebind."""
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    calls, answers = resolver
    answers.append(PUBLIC)
    with Receiver() as receiver:
        delivery = delivery_to(f"http://rebind.test:{receiver.port}/hook")
        assert webhooks.delivery_attempt(delivery_id=delivery.id) == "pending"  # the public address did not answer
        assert calls == ["rebind.test"]  # one lookup for the check and the connect
        first = delivery.attempts_made.get()
        assert first.status_code is None and "127.0.0.1" not in first.error
        WebhookDelivery.objects.filter(id=delivery.id).update(next_attempt_at=None)
        assert webhooks.delivery_attempt(delivery_id=delivery.id) == "failed"  # now it says 127.0.0.1: refused
        assert "127.0.0.1" in delivery.attempts_made.get(number=2).error
        assert receiver.received == []


def test_a_redirect_to_a_private_address_is_not_followed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # the first receiver is on 127.0.0.1 too
    with Receiver() as target, Receiver(then=302) as redirecting:
        redirecting.location = target.url
        delivery = delivery_to(redirecting.url)
        assert webhooks.delivery_attempt(delivery_id=delivery.id) == "failed"  # a 3xx is an answer, not a success
        assert delivery.attempts_made.get().status_code == 302
        assert len(redirecting.received) == 1 and target.received == []


def test_retention_publishes_expired_jobs_and_the_notifier_writes_job_expired_deliveries_only(settings, rabbitmq):
    from datetime import timedelta

    from django.core import mail
    from django.utils import timezone

    from core import broker
    from notifications.services import job_notify
    from tests.factories import job_create
    from uploads.models import Job
    from uploads.services.housekeeping import jobs_expire

    broker.declare_queues()
    settings.RETENTION_DAYS = 1
    owner = user_create()
    wants = WebhookEndpoint.objects.create(
        owner=owner, url="https://hooks.example.com/a", events=["job.expired"], secret=webhooks.secret_generate()
    )
    WebhookEndpoint.objects.create(
        owner=owner, url="https://hooks.example.com/b", events=["job.done"], secret=webhooks.secret_generate()
    )
    job = job_create(owner=owner, status=Job.Status.DONE, finished_at=timezone.now() - timedelta(days=2))
    depth = broker.queue_depth(broker.MP3)
    assert jobs_expire()["expired"] == 1
    assert broker.queue_depth(broker.MP3) == depth + 1
    assert job_notify(job_id=str(job.id)) is False and mail.outbox == []  # no email for an expiry
    job_notify(job_id=str(job.id))  # a redelivered message adds nothing
    (delivery,) = WebhookDelivery.objects.filter(job_id=job.id)
    assert delivery.endpoint == wants and delivery.event_type == "job.expired"
    assert delivery.payload["type"] == "job.expired" and delivery.payload["data"]["status"] == "expired"


def test_https_connects_to_the_checked_address_with_the_host_name_for_sni_and_the_certificate(
    resolver, settings, tmp_path, monkeypatch
):
    """hooks.test resolves (through the seam) to 127.0.0.1; the TLS server there sees SNI hooks.test and
    serves a certificate for hooks.test, which the client checks against the name, not the address."""
    import ssl
    import subprocess
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hooks.test",
         "-addext", "subjectAltName=DNS:hooks.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted for this test only
    names, hosts = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            hosts.append(self.headers["Host"])
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        delivery = delivery_to(f"https://hooks.test:{port}/hook")
        assert webhooks.delivery_attempt(delivery_id=delivery.id) == "delivered", delivery.attempts_made.get().error
        assert names == ["hooks.test"] and hosts == [f"hooks.test:{port}"]
        # The same server under a name its certificate does not carry: refused by the certificate check.
        other = delivery_to(f"https://other.test:{port}/hook")
        assert webhooks.delivery_attempt(delivery_id=other.id) == "pending"  # an error, retried later
        assert (
            "certificate" in other.attempts_made.get().error.lower()
            or "hostname" in other.attempts_made.get().error.lower()
        )
    finally:
        server.shutdown()
        server.server_close()
