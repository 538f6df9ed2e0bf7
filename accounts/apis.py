import base64
import binascii

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from core.api_errors import error, error_responses


class CredentialsSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()
    date_joined = serializers.DateTimeField()
    email_notifications = serializers.BooleanField(help_text="The job emails (ready, failed) are sent.")


class UserSettingsInputSerializer(serializers.Serializer):
    email_notifications = serializers.BooleanField(
        help_text="false: no job emails (ready, failed) are sent to this account."
    )


TokenPairSerializer = inline_serializer(
    "TokenPair", {"access": serializers.CharField(), "refresh": serializers.CharField()}
)


def throttled_response(exc: services.LoginThrottled) -> Response:
    response = error(status.HTTP_429_TOO_MANY_REQUESTS, exc.sentence)
    response["Retry-After"] = str(exc.retry_after)
    return response


class TokenObtainApi(APIView):
    """Exchange an email and password for an access and a refresh token."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=CredentialsSerializer, responses={200: TokenPairSerializer})
    def post(self, request):
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = services.user_authenticate(request=request, **serializer.validated_data)
        except services.LoginThrottled as exc:
            return throttled_response(exc)
        except services.InvalidCredentials:
            return error(status.HTTP_401_UNAUTHORIZED, "The email address or password is wrong.")
        return Response(services.token_pair_for(user))


class RefreshInputSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class TokenRefreshApi(APIView):
    """Exchange a refresh token for a new pair; the used one is blacklisted. Refused after a password change,
    for a deactivated or deleted account, and once the sign-in is JWT_REFRESH_MAX_LIFETIME old."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RefreshInputSerializer, responses={200: TokenPairSerializer, **error_responses(401)})
    def post(self, request):
        serializer = RefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            pair = services.token_pair_refresh(refresh=serializer.validated_data["refresh"])
        except services.TokenRefused as exc:
            return error(status.HTTP_401_UNAUTHORIZED, exc.sentence, code=exc.code)
        return Response(pair)


class LogoutApi(APIView):
    """Sign out: the refresh token can no longer be used."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=RefreshInputSerializer, responses={200: None})
    def post(self, request):
        serializer = RefreshInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            services.token_revoke(refresh=serializer.validated_data["refresh"])
        except services.TokenRefused as exc:
            return error(status.HTTP_401_UNAUTHORIZED, str(exc))
        return Response({"detail": "Signed out."})


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserOutputSerializer, **error_responses(401)})
    def get(self, request):
        return Response(UserOutputSerializer(request.user).data)

    @extend_schema(
        request=UserSettingsInputSerializer, responses={200: UserOutputSerializer, **error_responses(400, 401)}
    )
    def patch(self, request):
        serializer = UserSettingsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_set_email_notifications(
            user=request.user, enabled=serializer.validated_data["email_notifications"]
        )
        return Response(UserOutputSerializer(user).data)


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(request=CredentialsSerializer, responses={201: UserOutputSerializer})
    def post(self, request):
        if not settings.REGISTRATION_OPEN:
            return error(
                status.HTTP_403_FORBIDDEN,
                "Registration is closed on this server; ask its administrator for an account.",
            )
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"]
        serializers.EmailField().run_validation(email)
        user = services.user_register(email=email, password=serializer.validated_data["password"])
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    email, separator, password = decoded.partition(":")
    return (email, password) if separator else None


@csrf_exempt
@require_POST
def original_login(request):
    """The original system's login: HTTP Basic email:password, answered with the bare access token."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return HttpResponse("missing credentials", status=401, content_type="text/plain; charset=utf-8")
    credentials = _basic_credentials(header)
    if credentials is None:
        return HttpResponse(
            "malformed credentials: use HTTP Basic auth with email:password",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
    try:
        user = services.user_authenticate(request=request, email=credentials[0], password=credentials[1])
    except services.LoginThrottled as exc:
        response = HttpResponse(exc.sentence, status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(exc.retry_after)
        return response
    except services.InvalidCredentials:
        return HttpResponse("invalid credentials", status=401, content_type="text/plain; charset=utf-8")
    return HttpResponse(services.access_token_for(user), content_type="text/plain; charset=utf-8")
