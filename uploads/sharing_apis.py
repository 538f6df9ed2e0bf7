"""The API of share links (/api/jobs/<id>/shares/) and of the podcast feed (/api/feed/). The public /s/ and
/feeds/ URLs they hand out are pages and files, served by uploads.sharing_views."""

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import error, error_responses
from uploads import selectors
from uploads.apis import JOB_ID, _job_or_404
from uploads.services import sharing


class ShareLinkSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    state = serializers.ChoiceField(["active", "expired", "revoked"])
    url = serializers.URLField(
        allow_null=True, help_text="The link to hand on, while it works (null once it expired or was revoked)."
    )
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField(allow_null=True)


class ShareListSerializer(serializers.Serializer):
    results = ShareLinkSerializer(many=True)


class ShareCreateSerializer(serializers.Serializer):
    expires_in_hours = serializers.IntegerField(
        required=False, help_text="How long the link works, in whole hours (SHARE_LINK_HOURS when absent)."
    )


class FeedSerializer(serializers.Serializer):
    active = serializers.BooleanField(help_text="Whether the feed has an address now.")
    url = serializers.URLField(allow_null=True, help_text="The feed's address: anyone who has it can listen.")
    created_at = serializers.DateTimeField(allow_null=True, help_text="When the current address was made.")


def share_json(request, share, now=None) -> dict:
    state = selectors.share_link_state(share=share, now=now)
    token = selectors.share_link_token(share=share) if state == "active" else None
    return {
        "id": str(share.id),
        "state": state,
        "url": request.build_absolute_uri(reverse("share-page", args=[token])) if token else None,
        "created_at": serializers.DateTimeField().to_representation(share.created_at),
        "expires_at": serializers.DateTimeField().to_representation(share.expires_at),
        "revoked_at": serializers.DateTimeField().to_representation(share.revoked_at) if share.revoked_at else None,
    }


SHARE_ID = OpenApiParameter("share_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the share link's id")


class JobSharesApi(APIView):
    @extend_schema(
        operation_id="api_jobs_shares_list",
        summary="The job's share links, newest first, with the address of each one that still works",
        parameters=[JOB_ID],
        responses={200: ShareListSerializer, **error_responses(400, 401, 404)},
    )
    def get(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        if missing:
            return missing
        now = timezone.now()
        return Response({"results": [share_json(request, s, now) for s in selectors.share_links_for_job(job=job)]})

    @extend_schema(
        summary="Create a share link to the job's MP3",
        description=(
            "Anyone with the returned `url` can play and download the MP3 without signing in, until "
            "`expires_at` (after `expires_in_hours`, by default SHARE_LINK_HOURS, at most SHARE_LINK_MAX_HOURS) "
            "or until it is revoked. 409 when the job has no MP3 (not done, or expired)."
        ),
        parameters=[JOB_ID],
        request=ShareCreateSerializer,
        responses={201: ShareLinkSerializer, **error_responses(400, 401, 404, 409)},
    )
    def post(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        if missing:
            return missing
        data = request.data if isinstance(request.data, dict) else None
        if data is None:
            return error(
                400, 'Send a JSON object, e.g. {"expires_in_hours": 24}, or nothing.', code="malformed_request"
            )
        try:
            hours = sharing.share_hours_check(data.get("expires_in_hours"))
        except sharing.ShareHoursInvalid as exc:
            return error(400, str(exc), code="invalid_expiry")
        try:
            share, _token = sharing.share_link_create(job=job, hours=hours)
        except sharing.NothingToShare as exc:
            return error(409, str(exc), code="not_ready")
        return Response(share_json(request, share), status=201)


class JobShareDetailApi(APIView):
    @extend_schema(
        summary="Revoke a share link",
        description="The link stops working at once (its page answers 410); it stays listed, as revoked.",
        parameters=[JOB_ID, SHARE_ID],
        responses={200: ShareLinkSerializer, **error_responses(400, 401, 404)},
    )
    def delete(self, request, job_id, share_id):
        job, missing = _job_or_404(request, job_id)
        if missing:
            return missing
        if selectors.job_id_parse(share_id) is None:
            return error(
                400, "This is not a share link id; use an id from GET /api/jobs/<id>/shares/.", code="malformed_id"
            )
        share = selectors.share_link_get_for_job(job=job, share_id=share_id)
        if share is None:
            return error(404, "This job has no share link with this id.", code="not_found")
        return Response(share_json(request, sharing.share_link_revoke(share=share)))


def feed_json(request, feed) -> dict:
    if feed is None:
        return {"active": False, "url": None, "created_at": None}
    url = request.build_absolute_uri(reverse("feed-document", args=[selectors.feed_token(feed=feed)]))
    return {
        "active": True,
        "url": url,
        "created_at": serializers.DateTimeField().to_representation(feed.created_at),
    }


class FeedApi(APIView):
    @extend_schema(
        summary="Your private podcast feed: its address, when it has one",
        responses={200: FeedSerializer, **error_responses(401)},
    )
    def get(self, request):
        return Response(feed_json(request, selectors.feed_for_user(user=request.user)))

    @extend_schema(
        summary="Give your podcast feed a new address (or its first)",
        description=(
            "The previous address, and every enclosure, cover and chapters URL it listed, stop working at once "
            "(404); podcast apps need the new `url`."
        ),
        request=None,
        responses={200: FeedSerializer, **error_responses(401)},
    )
    def post(self, request):
        feed, _token = sharing.feed_renew(owner=request.user)
        return Response(feed_json(request, feed))

    @extend_schema(
        summary="Revoke your podcast feed",
        description="The address and every enclosure URL it listed answer 404 from now on. Making a new one is POST.",
        request=None,
        responses={204: None, **error_responses(401)},
    )
    def delete(self, request):
        sharing.feed_revoke(owner=request.user)
        return Response(status=204)
