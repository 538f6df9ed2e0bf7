"""Every API error body carries a `detail` sentence a user can act on."""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _first_message(errors) -> str:
    if isinstance(errors, dict):
        for field, value in errors.items():
            message = _first_message(value)
            return message if field in ("non_field_errors", "detail") else f"{field}: {message}"
    if isinstance(errors, list | tuple) and errors:
        return _first_message(errors[0])
    return str(errors)


class Refusal(exceptions.APIException):
    """A refusal with a sentence, a code and, for limits, a Retry-After: raised where no view answers yet."""

    def __init__(
        self,
        status_code: int,
        sentence: str,
        code: str,
        *,
        retry_after: int | None = None,
        errors: dict[str, list[str]] | None = None,
    ):
        self.status_code = status_code
        super().__init__(sentence, code)
        self.refusal_code = code
        self.retry_after = retry_after
        self.errors = errors  # per form field, as a view's 400 gives them


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    refusal = _refuse_suspicious_request(exc)
    if refusal is not None:
        return refusal
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or unreachable: say so, instead of a 500 that looks like a bug.
        return Response({"detail": "The database is unreachable right now; try again in a minute."}, status=503)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": _first_message(exc.detail), "errors": exc.detail}
    elif isinstance(exc, exceptions.ParseError):
        response.data = {
            "detail": f"The request body could not be read ({str(exc.detail).rstrip('.')}); fix its format and send it again.",
            "code": "malformed_request",
        }
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = {
            "detail": "Sign in first: send 'Authorization: Bearer <access token>' (get one from POST /api/auth/token/)."
        }
    elif isinstance(exc, exceptions.AuthenticationFailed):
        # simplejwt's own texts name token classes; say what to do instead.
        codes = exc.get_codes()
        code = codes.get("code", "token_not_valid") if isinstance(codes, dict) else str(codes)
        if code in ("user_inactive", "user_not_found"):
            sentence = "This account is deactivated or no longer exists; ask this server's administrator."
        else:
            sentence = (
                "The token is invalid, expired or not an access token; sign in again at POST /api/auth/token/ "
                "(or refresh it at POST /api/auth/token/refresh/)."
            )
        response.data = {"detail": sentence, "code": code}
    elif isinstance(exc, Refusal):
        response.data = {"detail": str(exc.detail), "code": exc.refusal_code}
        if exc.errors:
            response.data["errors"] = exc.errors
        if exc.retry_after:
            response["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, exceptions.Throttled) and exc.wait:
        response["Retry-After"] = str(int(exc.wait) + 1)
    return response


def _refuse_suspicious_request(exc) -> Response | None:
    """Django's own request limits, raised while the body is parsed: a 400 or 413 with a sentence, never a 500."""
    if isinstance(exc, TooManyFieldsSent):
        return error(
            400, "The request has too many form fields; send only the file in the field 'file'.", code="too_many_fields"
        )
    if isinstance(exc, TooManyFilesSent):
        return error(400, "The request has too many files; send exactly one file.", code="too_many_files")
    if isinstance(exc, RequestDataTooBig):
        return error(413, "The form fields beside the file are too large; send only the file.", code="too_large")
    if isinstance(exc, SuspiciousOperation):
        return error(400, "The request is malformed; send one file as multipart/form-data.", code="malformed_request")
    return None


def error(status_code: int, detail: str, **extra) -> Response:
    return Response({"detail": detail, **extra}, status=status_code)


class ErrorSerializer(serializers.Serializer):
    """The body of every API error (the schema's description of it)."""

    detail = serializers.CharField(help_text="A sentence saying what went wrong and what to do.")
    code = serializers.CharField(required=False, help_text="A machine-readable reason, e.g. malformed_id.")


# What each status means across the API (the README's status table).
_MEANINGS = {
    400: "Malformed request: no file, several files, broken multipart, too many fields, a malformed id.",
    401: "Missing or bad credentials.",
    403: "Not allowed.",
    404: "Another user's or an unknown id.",
    409: "The job's state does not allow this action.",
    413: "Over the size limit.",
    422: "Not audio or video, no audio track, or a container outside the allow-list.",
    429: "Throttled or over a quota; see Retry-After.",
    503: "A store is unreachable; try again later.",
}


def error_responses(*statuses: int) -> dict:
    """OpenAPI responses for these error statuses, for extend_schema(responses={...})."""
    return {status: OpenApiResponse(ErrorSerializer, description=_MEANINGS[status]) for status in statuses}
