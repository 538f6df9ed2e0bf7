"""The webhooks page of the account area: endpoints, their secret shown once, and the deliveries log."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from notifications import selectors, webhooks
from notifications.models import WebhookEvent

# The secret of an endpoint just created or rotated, kept in the session until the page showed it once.
SHOWN_ONCE = "webhook_secret_shown_once"


def _page():
    return HttpResponseRedirect(reverse("webhooks-page"))


def _endpoint(request, endpoint_id):
    endpoint = selectors.endpoint_get_for_user(user=request.user, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


def _sentence(exc: ValidationError) -> str:
    return " ".join(
        message for messages_ in getattr(exc, "message_dict", {"": exc.messages}).values() for message in messages_
    )


@login_required
def webhooks_page(request):
    form = {"url": "", "events": [WebhookEvent.JOB_DONE, WebhookEvent.JOB_FAILED], "description": ""}
    errors = []
    if request.method == "POST":
        form = {
            "url": request.POST.get("url", "").strip(),
            "events": request.POST.getlist("events"),
            "description": request.POST.get("description", "").strip()[:500],
        }
        if not form["events"] or not set(form["events"]) <= set(WebhookEvent.values):
            errors.append("Choose at least one event.")
        if not errors:
            try:
                endpoint = webhooks.endpoint_create(owner=request.user, **form)
            except ValidationError as exc:
                errors.append(_sentence(exc))
            else:
                request.session[SHOWN_ONCE] = {"endpoint": str(endpoint.id), "secret": endpoint.secret}
                messages.success(request, "Endpoint added. Copy its signing secret now: it is shown only once.")
                return _page()
    endpoints = [
        (endpoint, selectors.delivery_list_for_endpoint(endpoint=endpoint, limit=20))
        for endpoint in selectors.endpoint_list_for_user(user=request.user)
    ]
    return render(
        request,
        "notifications/webhooks.html",
        {
            "endpoints": endpoints,
            "event_choices": WebhookEvent.choices,
            "form": form,
            "errors": errors,
            "shown_once": request.session.pop(SHOWN_ONCE, None),
        },
        status=400 if errors else 200,
    )


@login_required
@require_POST
def webhook_action(request, endpoint_id, action):
    endpoint = _endpoint(request, endpoint_id)
    if action == "rotate":
        endpoint = webhooks.endpoint_rotate_secret(endpoint=endpoint)
        request.session[SHOWN_ONCE] = {"endpoint": str(endpoint.id), "secret": endpoint.secret}
        messages.success(request, "New signing secret made; the old one no longer signs. Copy it now.")
    elif action == "enable":
        webhooks.endpoint_update(endpoint=endpoint, enabled=True)
        messages.success(request, "Endpoint enabled; redeliver what it missed below.")
    elif action == "disable":
        webhooks.endpoint_update(endpoint=endpoint, enabled=False)
        messages.success(request, "Endpoint disabled; nothing is sent to it until you enable it.")
    elif action == "delete":
        webhooks.endpoint_delete(endpoint=endpoint)
        messages.success(request, "Endpoint deleted.")
    else:
        raise Http404("No such action.")
    return _page()


@login_required
@require_POST
def webhook_redeliver(request, endpoint_id, delivery_id):
    endpoint = _endpoint(request, endpoint_id)
    delivery = selectors.delivery_get_for_endpoint(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    try:
        webhooks.delivery_redeliver(delivery=delivery)
    except ValidationError as exc:
        messages.error(request, _sentence(exc))
    else:
        messages.success(request, f"Delivery {delivery.message_id} queued again, with the same webhook-id.")
    return _page()
