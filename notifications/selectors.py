"""Reads of a user's webhook endpoints and their deliveries. A user only ever sees their own."""

import uuid

from django.db.models import Prefetch, QuerySet

from notifications.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _uuid(value) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def endpoint_list_for_user(*, user) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(owner=user).order_by("created_at")


def endpoint_get_for_user(*, user, endpoint_id) -> WebhookEndpoint | None:
    parsed = _uuid(endpoint_id)
    return WebhookEndpoint.objects.filter(owner=user, id=parsed).first() if parsed else None


def delivery_list_for_endpoint(*, endpoint: WebhookEndpoint, limit: int = 50) -> list[WebhookDelivery]:
    """The newest deliveries, each with its attempts."""
    attempts = Prefetch("attempts_made", queryset=WebhookAttempt.objects.order_by("number"))
    return list(endpoint.deliveries.order_by("-created_at").prefetch_related(attempts)[:limit])


def delivery_get_for_endpoint(*, endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery | None:
    parsed = _uuid(delivery_id)
    return endpoint.deliveries.filter(id=parsed).first() if parsed else None


def id_is_malformed(value) -> bool:
    return _uuid(value) is None
