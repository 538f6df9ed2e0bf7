"""/api/webhooks/: a user's webhook endpoints, their secrets (shown once), and the log of deliveries."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import error, error_responses
from notifications import selectors, webhooks
from notifications.models import WebhookEvent

ENDPOINT_ID = OpenApiParameter("endpoint_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the endpoint's id")
DELIVERY_ID = OpenApiParameter("delivery_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the delivery's id")
ERRORS = error_responses(400, 401, 404)


class EndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    url = serializers.CharField(max_length=2000, help_text="http:// or https:// URL that receives the POSTs.")
    events = serializers.ListField(
        child=serializers.ChoiceField(
            choices=WebhookEvent.choices,
            error_messages={"invalid_choice": '"{input}" is not an event; choose job.done, job.failed or job.expired.'},
        ),
        min_length=1,
        error_messages={"min_length": "Choose at least one event: job.done, job.failed or job.expired."},
        help_text="Events to send.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(
        required=False, help_text="false once disabled (410, or failing too long); true enables it again."
    )
    disabled_reason = serializers.CharField(read_only=True)
    disabled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    consecutive_failures = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="whsec_…: verify the webhook-signature with it. Shown only now; rotate to replace."
    )


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField()
    response_snippet = serializers.CharField()
    error = serializers.CharField()
    retry_in_seconds = serializers.FloatField(allow_null=True)


class DeliverySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    webhook_id = serializers.CharField(
        source="message_id", help_text="The webhook-id header, the same on every attempt."
    )
    event_type = serializers.CharField()
    job_id = serializers.UUIDField()
    state = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    payload = serializers.JSONField()
    attempts = AttemptSerializer(many=True, source="attempts_made.all")


def _endpoint_or_error(request, endpoint_id):
    if selectors.id_is_malformed(endpoint_id):
        return None, error(
            400, "This is not an endpoint id; ids are UUIDs as POST /api/webhooks/ returns them.", code="malformed_id"
        )
    endpoint = selectors.endpoint_get_for_user(user=request.user, endpoint_id=endpoint_id)
    if endpoint is None:
        return None, error(
            404, "No such webhook endpoint; check the id (other users' are not visible).", code="not_found"
        )
    return endpoint, None


class EndpointListCreateApi(APIView):
    @extend_schema(responses={200: EndpointSerializer(many=True), **error_responses(401)})
    def get(self, request):
        return Response(EndpointSerializer(selectors.endpoint_list_for_user(user=request.user), many=True).data)

    @extend_schema(
        request=EndpointSerializer, responses={201: EndpointWithSecretSerializer, **error_responses(400, 401)}
    )
    def post(self, request):
        serializer = EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = webhooks.endpoint_create(
            owner=request.user, url=data["url"], events=data["events"], description=data.get("description", "")
        )
        return Response(EndpointWithSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema(parameters=[ENDPOINT_ID], responses={200: EndpointSerializer, **ERRORS})
    def get(self, request, endpoint_id):
        endpoint, missing = _endpoint_or_error(request, endpoint_id)
        return missing or Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        parameters=[ENDPOINT_ID],
        request=EndpointSerializer(partial=True),
        responses={200: EndpointSerializer, **ERRORS},
    )
    def patch(self, request, endpoint_id):
        endpoint, missing = _endpoint_or_error(request, endpoint_id)
        if missing:
            return missing
        serializer = EndpointSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = {
            name: serializer.validated_data[name]
            for name in ("url", "events", "description", "enabled")
            if name in serializer.validated_data
        }
        endpoint = webhooks.endpoint_update(endpoint=endpoint, **fields)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(parameters=[ENDPOINT_ID], responses={204: None, **ERRORS})
    def delete(self, request, endpoint_id):
        endpoint, missing = _endpoint_or_error(request, endpoint_id)
        if missing:
            return missing
        webhooks.endpoint_delete(endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretApi(APIView):
    @extend_schema(parameters=[ENDPOINT_ID], request=None, responses={200: EndpointWithSecretSerializer, **ERRORS})
    def post(self, request, endpoint_id):
        endpoint, missing = _endpoint_or_error(request, endpoint_id)
        if missing:
            return missing
        return Response(EndpointWithSecretSerializer(webhooks.endpoint_rotate_secret(endpoint=endpoint)).data)


class DeliveryListApi(APIView):
    @extend_schema(parameters=[ENDPOINT_ID], responses={200: DeliverySerializer(many=True), **ERRORS})
    def get(self, request, endpoint_id):
        endpoint, missing = _endpoint_or_error(request, endpoint_id)
        if missing:
            return missing
        return Response(DeliverySerializer(selectors.delivery_list_for_endpoint(endpoint=endpoint), many=True).data)


class DeliveryRedeliverApi(APIView):
    @extend_schema(
        parameters=[ENDPOINT_ID, DELIVERY_ID],
        request=None,
        responses={202: DeliverySerializer, **ERRORS, **error_responses(409)},
    )
    def post(self, request, endpoint_id, delivery_id):
        endpoint, missing = _endpoint_or_error(request, endpoint_id)
        if missing:
            return missing
        if selectors.id_is_malformed(delivery_id):
            return error(
                400, "This is not a delivery id; ids are UUIDs as the deliveries list gives them.", code="malformed_id"
            )
        delivery = selectors.delivery_get_for_endpoint(endpoint=endpoint, delivery_id=delivery_id)
        if delivery is None:
            return error(404, "No such delivery for this endpoint; check the id.", code="not_found")
        if not endpoint.enabled:
            return error(
                409, "This endpoint is disabled; enable it (PATCH enabled: true), then redeliver.", code="disabled"
            )
        delivery = webhooks.delivery_redeliver(delivery=delivery)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
