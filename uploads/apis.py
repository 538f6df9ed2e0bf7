import base64
import binascii
import hashlib
import json
import re

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core import storage
from core.api_errors import Refusal, error, error_responses
from uploads import archives, selectors
from uploads import options as job_options
from uploads.downloads import mp3_response
from uploads.models import Job
from uploads.serializers import (
    JobSerializer,
    OutputOptionsSerializer,
    PresetSerializer,
    UploadCheckSerializer,
    UploadSerializer,
)
from uploads.services import deletion, intake, recovery
from uploads.upload_handlers import MULTIPART_OVERHEAD, FieldsFirstMultiPartParser, UploadTooLarge


class StoreUnavailable(APIException):
    status_code = 503
    default_detail = "The file store is unreachable right now; try again in a minute."


def _refuse_before_body(request, user) -> None:
    """Raise the answer to an upload its headers already refuse: 400 without Content-Length, 413 when it
    says the body is too large, 429 when the user is at a limit. Reads no byte of the body.

    Django reads no request body without Content-Length (a chunked upload would look like "no file").
    """
    raw = request.META.get("CONTENT_LENGTH") or ""
    try:
        length = int(raw)
    except ValueError:  # also thousands of digits, which int() refuses
        length = -1
    if length < 0:
        raise Refusal(
            400,
            "The upload has no valid Content-Length header; send the file as an ordinary multipart/form-data "
            "request (chunked transfer encoding is not supported).",
            "length_required",
        )
    if length > settings.MAX_UPLOAD_SIZE + MULTIPART_OVERHEAD:
        raise UploadTooLarge()
    # What an upload stores (its audio: a few MB of a video of GBs) is only known once it is extracted,
    # and checked then; a user already at a limit is refused now.
    try:
        intake.quota_check(owner=user, incoming=1)
    except intake.QuotaExceeded as exc:
        raise Refusal(429, str(exc), exc.code, retry_after=exc.retry_after) from None


# RFC 9530 Repr-Digest, a structured-field dictionary: sha-256=:<base64 of the 32-byte digest>:
_SHA256_DIGEST = re.compile(r"(?:^|,)\s*sha-256=:([A-Za-z0-9+/]{43}=):")


def _declared_sha256(request) -> str | None:
    match = _SHA256_DIGEST.search(request.META.get("HTTP_REPR_DIGEST", "")[:1024])
    if match is None:
        return None
    try:
        return base64.b64decode(match.group(1), validate=True).hex()
    except binascii.Error:
        return None


class _UploadApi(APIView):
    """An upload endpoint. What the headers already decide is answered before anything reads the body,
    whoever signs the request in: DRF's session authentication runs Django's CSRF check, which reads
    request.POST, so it would parse and spool the whole body first. The user is taken from the Bearer
    token, or the session cookie, alone."""

    parser_classes = [FieldsFirstMultiPartParser]
    reused_from_digest = None
    check_fields_before_file = None  # a view's check of the form fields that precede the file

    def initial(self, request, *args, **kwargs):
        user, by_token = self._user_from_headers(request) if request.method == "POST" else (None, False)
        if user is not None:
            if by_token:  # a page's session would need its CSRF token, which lives in the body
                self.reused_from_digest = self._reuse_from_digest(request, user)
            if self.reused_from_digest is None:
                _refuse_before_body(request, user)
                if self.check_fields_before_file is not None:
                    # Parsed now, through FieldsFirstMultiPartParser, so the fields before the file are
                    # checked before its bytes are read: the session's CSRF check below would otherwise
                    # parse the body with Django's own parser, which spools the whole file first. (The
                    # CSRF check then reads what was parsed; a forged request still gets its 403, unless
                    # its options were refused first: it learns nothing, and nothing is stored.)
                    request.data  # noqa: B018
        super().initial(request, *args, **kwargs)

    def _user_from_headers(self, request):
        for authenticator in request.authenticators:
            if isinstance(authenticator, SessionAuthentication):
                user = getattr(request._request, "user", None)  # from the session cookie; no body read
                return (user, False) if user is not None and user.is_authenticated else (None, False)
            try:
                found = authenticator.authenticate(request)
            except AuthenticationFailed:
                return None, False  # DRF answers 401 with its sentence
            if found is not None:
                return found[0], True
        return None, False

    def _reuse_from_digest(self, request, user):
        """A re-upload that declares its SHA-256 (Repr-Digest) and that dedup would serve is answered at
        once, without its body: even over a quota, the MP3 exists. Its options come from the URL's query."""
        sha256 = _declared_sha256(request)
        if sha256 is None:
            return None
        options, refusal = _query_options(request)
        if refusal is not None:
            return None  # the ordinary path reads the body and says what is wrong
        return intake.job_create_from_digest(owner=user, content_sha256=sha256, options=options)


def _single_upload(request, *, field: str | None):
    """The one uploaded file, or a 400 Response. field=None accepts any field name (the original system)."""
    files = request.FILES
    count = sum(len(files.getlist(name)) for name in files)
    if count == 0:
        where = f"in the multipart field '{field}'" if field else "as multipart/form-data"
        return None, error(status.HTTP_400_BAD_REQUEST, f"No file was sent; send exactly one file {where}.")
    if count > 1 or (field and field not in files):
        where = f" in the multipart field '{field}'" if field else ""
        return None, error(status.HTTP_400_BAD_REQUEST, f"Send exactly one file{where}; this request had {count}.")
    return files[field] if field else next(iter(files.values())), None


def _quota_response(exc: intake.QuotaExceeded) -> Response:
    response = error(status.HTTP_429_TOO_MANY_REQUESTS, str(exc), code=exc.code)
    response["Retry-After"] = str(exc.retry_after)
    return response


def _requested_options(request):
    """Per-job options from the form fields beside `file` and the JSON `options` field, or a 400 Response.

    A request that declares its digest (Repr-Digest) carries them in the URL query instead, where
    they are read before the body (_UploadApi); option fields in its body would go unread, so are refused."""
    form = {name: request.data.get(name) for name in request.data if name not in request.FILES and name != "options"}
    if _declared_sha256(request) is not None:
        if form or request.data.get("options") is not None:
            return None, error(
                400,
                "With a Repr-Digest header, send the output options in the URL query (?preset=podcast&bitrate=96), "
                "where they are read before the body.",
                code="invalid_options",
            )
        return _query_options(request)
    return _parsed_options(form, request.data.get("options"))


def _query_options(request):
    query = {name: request.query_params.get(name) for name in request.query_params if name != "options"}
    return _parsed_options(query, request.query_params.get("options"))


def _parsed_options(form: dict, json_text: str | None):
    options, errors = _options_and_errors(form, json_text)
    if errors:
        rejected = intake.options_rejected(job_options.OptionsInvalid(errors))
        return None, error(rejected.status, str(rejected), code=rejected.code, errors=rejected.errors)
    return options, None


def _options_and_errors(form: dict, json_text: str | None):
    """The options that parse, and every field's error (none: the options are valid)."""
    raw, json_errors = job_options.merge_sources(form=form, json_text=json_text)
    options, errors = job_options.parse_what_is_valid(raw, default_bitrate=settings.MP3_BITRATE_KBPS)
    return options, {**json_errors, **errors}


def _create_job_response(request, upload, *, created_status: int, options=None) -> Response:
    declared = _declared_sha256(request)
    if declared is not None and getattr(upload, "content_sha256", declared) != declared:
        return error(
            400,
            "The file that arrived does not match its Repr-Digest header; it may have been damaged on the way. "
            "Send it again.",
            code="digest_mismatch",
        )
    try:
        job = intake.job_create(owner=request.user, upload=upload, options=options)
    except intake.QuotaExceeded as exc:
        return _quota_response(exc)
    except intake.UploadRejected as exc:
        if exc.errors:
            return error(exc.status, str(exc), code=exc.code, errors=exc.errors)
        return error(exc.status, str(exc), code=exc.code)
    except storage.StorageError as exc:
        raise StoreUnavailable(str(exc)) from exc
    return Response(JobSerializer(job, context={"request": request}).data, status=created_status)


PaginatedJobsSerializer = inline_serializer(
    "PaginatedJobs",
    {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": JobSerializer(many=True),
        "versions": serializers.ListField(
            child=serializers.CharField(),
            required=False,
            help_text="With ?known=: the version of every job on this page, in order (results holds only the new ones).",
        ),
    },
)
KNOWN_VERSIONS = OpenApiParameter(
    "known",
    str,
    required=False,
    description=(
        "Comma-separated `version`s of jobs the client already holds: `results` then carries only the jobs "
        "whose JSON differs, and `versions` lists the whole page's, so a poll sends only what changed."
    ),
)
# A page's worth of versions, with room to spare: what a longer query holds is ignored.
KNOWN_VERSIONS_MAX_CHARS = 4096


def _conditional_response(request, data) -> Response:
    """`data` as JSON with an ETag, or 304 Not Modified when the client already holds exactly this."""
    body = json.dumps(data, sort_keys=True, default=str).encode()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    # Weak comparison (RFC 9110 13.1.2): the gzip middleware hands the tag out as W/"...".
    held = (tag.strip().removeprefix("W/") for tag in request.headers.get("If-None-Match", "").split(","))
    if etag in held:
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(data, headers=headers)


# Any string reaches the view (a malformed one answers 400), but a job id is a UUID.
JOB_ID = OpenApiParameter("job_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="the job's id")
UPLOAD_ERRORS = error_responses(400, 401, 413, 422, 429, 503)
REPR_DIGEST = OpenApiParameter(
    "Repr-Digest",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "RFC 9530 digest of the file, `sha-256=:<base64>:`. A re-upload that dedup can serve is answered at "
        "once, without reading the body (Bearer token only); output options then go in the URL query."
    ),
)
JOB_ERRORS = error_responses(400, 401, 404)


class JobListCreateApi(_UploadApi):
    @extend_schema(
        operation_id="api_jobs_list",
        parameters=[
            OpenApiParameter("status", str, enum=[s.value for s in Job.Status], required=False),
            KNOWN_VERSIONS,
        ],
        responses={200: PaginatedJobsSerializer, 304: None, **error_responses(400, 401)},
    )
    def get(self, request):
        wanted = request.query_params.get("status")
        if wanted and wanted not in Job.Status.values:
            return error(400, f"Unknown status '{wanted[:32]}'; use one of: {', '.join(Job.Status.values)}.")
        jobs = selectors.job_list_for_user(user=request.user, status=wanted)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        data = paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data).data
        known = request.query_params.get("known")
        if known is not None:
            held = set(known[:KNOWN_VERSIONS_MAX_CHARS].split(","))
            data["versions"] = [job["version"] for job in data["results"]]
            data["results"] = [job for job in data["results"] if job["version"] not in held]
        return _conditional_response(request, data)

    def check_fields_before_file(self, fields) -> None:
        """The output options among the fields sent before the file, refused with every error at once
        before the file's bytes are read (FieldsFirstMultiPartParser). What is sent after the file, and
        what depends on the file, is checked once it has arrived."""
        if _declared_sha256(self.request) is not None:
            return  # its options are in the URL query; post() refuses option fields in the body
        form = {name: fields.get(name) for name in fields if name != "options"}
        _options, errors = _options_and_errors(form, fields.get("options"))
        if errors:
            rejected = intake.options_rejected(job_options.OptionsInvalid(errors))
            raise Refusal(rejected.status, str(rejected), rejected.code, errors=rejected.errors)

    @extend_schema(
        description=(
            "Send the option fields before the file part: invalid ones are then refused (400 "
            "`invalid_options`, every field's error at once) before the file's bytes are read."
        ),
        request={"multipart/form-data": UploadSerializer},
        parameters=[REPR_DIGEST],
        responses={202: JobSerializer, **UPLOAD_ERRORS},
    )
    def post(self, request):
        if self.reused_from_digest is not None:
            return Response(JobSerializer(self.reused_from_digest, context={"request": request}).data, status=202)
        upload, refusal = _single_upload(request, field="file")
        if refusal:
            return refusal
        options, refusal = _requested_options(request)
        if refusal:
            return refusal
        return _create_job_response(request, upload, created_status=status.HTTP_202_ACCEPTED, options=options)


# The preflight's head and tail: enough for the container headers at either end of a file.
CHECK_PART_BYTES = 1024 * 1024
CHECK_REQUEST_BYTES = 2 * CHECK_PART_BYTES + MULTIPART_OVERHEAD
CHECK_FIELDS = ("name", "size")


class UploadCheckApi(APIView):
    """POST /api/jobs/check/: what the upload of a file would be refused for, before it is sent."""

    parser_classes = [MultiPartParser]

    def initial(self, request, *args, **kwargs):
        if request.method == "POST":
            try:
                length = int(request.META.get("CONTENT_LENGTH") or "")
            except ValueError:
                length = -1
            if not 0 <= length <= CHECK_REQUEST_BYTES:
                raise Refusal(
                    413,
                    "Send at most the file's first and last MiB (head and tail) with its name, size and options.",
                    "too_large",
                )
        super().initial(request, *args, **kwargs)

    @extend_schema(
        summary="Check an upload before sending it: options, size, quota, and the file's first and last MiB",
        description=(
            "Answers 200 `ok` when the upload would be accepted (with the duration and audio streams probed "
            "from `head` and `tail`; `probed: false` when they do not tell, and the upload itself decides), "
            "else the status and `code` the upload would get, with every error at once in `errors` (keyed by "
            "form field; `file` for the file itself). Stores nothing."
        ),
        request={"multipart/form-data": UploadCheckSerializer},
        responses={
            200: inline_serializer(
                "UploadCheck",
                {
                    "ok": serializers.BooleanField(),
                    "probed": serializers.BooleanField(),
                    "duration": serializers.FloatField(allow_null=True),
                    "audio_streams": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **error_responses(400, 401, 413, 422, 429),
        },
    )
    def post(self, request):
        size, head, tail, refusal = _check_parts(request)
        if refusal:
            return refusal
        form = {
            name: request.data.get(name)
            for name in request.data
            if name not in request.FILES and name not in CHECK_FIELDS and name != "options"
        }
        options, option_errors = _options_and_errors(form, request.data.get("options"))
        checked = intake.upload_check(
            owner=request.user, size=size, head=head, tail=tail, options=options, option_errors=option_errors
        )
        if not checked.refusals:
            info = checked.info
            return Response(
                {
                    "ok": True,
                    "probed": checked.probed,
                    "duration": info.duration if info else None,
                    "audio_streams": info.audio_streams if info else [],
                }
            )
        first = checked.refusals[0]
        errors: dict[str, list[str]] = {}
        for refused in checked.refusals:
            for field, sentences in (refused.errors or {"file": [str(refused)]}).items():
                errors.setdefault(field, []).extend(sentences)
        detail = " ".join(str(refused) for refused in checked.refusals)
        response = error(first.status, detail, code=first.code, errors=errors, ok=False)
        if isinstance(first, intake.QuotaExceeded):
            response["Retry-After"] = str(first.retry_after)
        return response


def _check_parts(request):
    """(size, head bytes, tail bytes, None) of a preflight, or a 400 Response."""
    try:
        size = int(request.data.get("size", ""))
    except ValueError:
        size = -1
    head, tail = request.FILES.get("head"), request.FILES.get("tail")
    if size < 0 or head is None:
        return (
            None,
            None,
            None,
            error(
                400,
                "Send the file's size in bytes (size) and its first bytes (head; with tail, its last bytes).",
                code="malformed_request",
            ),
        )
    if head.size > CHECK_PART_BYTES or (tail is not None and tail.size > CHECK_PART_BYTES):
        return None, None, None, error(400, "Send at most 1 MiB each as head and tail.", code="malformed_request")
    head_bytes, tail_bytes = head.read(), tail.read() if tail is not None else b""
    if len(head_bytes) > size or len(tail_bytes) > size:
        return (
            None,
            None,
            None,
            error(400, "The head and tail cannot be longer than the file.", code="malformed_request"),
        )
    return size, head_bytes, tail_bytes, None


class PresetListApi(APIView):
    """The named option presets: `preset=<name>` on upload, individual fields override them."""

    permission_classes = [AllowAny]

    @extend_schema(responses=PresetSerializer(many=True))
    def get(self, request):
        return Response({"results": job_options.presets_listing()})


def _job_or_404(request, job_id):
    """The user's job; a 400 for an id that cannot be a job id, a 404 for another user's or an unknown one."""
    if selectors.job_id_parse(job_id) is None:
        return None, error(
            400, "This is not a job id; job ids are UUIDs as returned by POST /api/jobs/.", code="malformed_id"
        )
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    if job is None:
        return None, error(404, "No such job; check the id (jobs of other users are not visible).", code="not_found")
    return job, None


class JobDetailApi(APIView):
    @extend_schema(parameters=[JOB_ID], responses={200: JobSerializer, 304: None, **JOB_ERRORS})
    def get(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        return missing or _conditional_response(request, JobSerializer(job, context={"request": request}).data)

    @extend_schema(parameters=[JOB_ID], responses={204: None, 202: JobSerializer, **JOB_ERRORS, **error_responses(503)})
    def delete(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        if missing:
            return missing
        cancelled = deletion.job_delete(
            job=job
        )  # its files go after the commit; a store outage leaves them to the cleanup
        if cancelled is not None:
            return Response(JobSerializer(cancelled, context={"request": request}).data, status=202)
        return Response(status=204)


def _body_options(request, *, when_empty):
    """Output options from the body of a retry or convert request: a JSON object or form fields of the
    upload form's names, and/or an `options` JSON string, parsed as an upload's; `when_empty` when there
    are none. A 400 Response when they are not valid."""
    data = request.data
    if not isinstance(data, dict):  # QueryDict is a dict; a JSON list or string is not
        return None, error(
            400,
            'Send the output options as a JSON object, e.g. {"bitrate": 128, "normalize": false}.',
            code="invalid_options",
        )
    if not data:
        return when_empty, None
    json_text = data.get("options")
    if isinstance(json_text, dict):  # a JSON body may nest the object itself
        json_text = json.dumps(json_text)
    return _parsed_options({name: data.get(name) for name in data if name != "options"}, json_text)


def _job_again_response(request, job_id, action, *, when_empty) -> Response:
    job, missing = _job_or_404(request, job_id)
    if missing:
        return missing
    options, refusal = _body_options(request, when_empty=when_empty)
    if refusal:
        return refusal
    try:
        job = action(job=job, options=options)
    except intake.QuotaExceeded as exc:
        return _quota_response(exc)
    except intake.UploadRejected as exc:
        return error(exc.status, str(exc), code=exc.code, errors=exc.errors)
    except recovery.JobStateConflict as exc:
        return error(409, str(exc), code="conflict")
    except storage.StorageError as exc:
        raise StoreUnavailable(str(exc)) from exc
    return Response(JobSerializer(job, context={"request": request}).data, status=202)


JOB_AGAIN_ERRORS = {**JOB_ERRORS, **error_responses(409, 429, 503)}
AGAIN_OPTIONS = {
    "application/json": OutputOptionsSerializer,
    "multipart/form-data": OutputOptionsSerializer,
    "application/x-www-form-urlencoded": OutputOptionsSerializer,
}


class JobRetryApi(APIView):
    @extend_schema(
        summary="Retry a failed or cancelled job, with the same or other output options",
        description=(
            "Queues the job again from its stored audio (no new upload). With no body it keeps its options; "
            "output option fields (the upload form's names, or an `options` JSON string) replace them, "
            "checked as an upload's (400 `invalid_options`, `errors` per field). 409 for a job in another "
            "state, or whose files are no longer stored."
        ),
        request=AGAIN_OPTIONS,
        parameters=[JOB_ID],
        responses={202: JobSerializer, **JOB_AGAIN_ERRORS},
    )
    def post(self, request, job_id):
        return _job_again_response(request, job_id, recovery.job_retry, when_empty=None)


class JobConvertApi(APIView):
    @extend_schema(
        summary="Convert a done, failed or cancelled job again with other output options, as a new job",
        description=(
            "Creates a new job of the same file from the job's stored audio (no new upload); the job itself "
            "stays as it is. Output option fields as on upload (none: the defaults). Quota-checked like an "
            "upload; when dedup finds your done job of the same file and options, the new job is done at "
            "once (`reused_from`). 409 for a queued, converting or expired job, or one whose files are gone."
        ),
        request=AGAIN_OPTIONS,
        parameters=[JOB_ID],
        responses={202: JobSerializer, **JOB_AGAIN_ERRORS},
    )
    def post(self, request, job_id):
        defaults = job_options.default_options(default_bitrate=settings.MP3_BITRATE_KBPS)
        return _job_again_response(request, job_id, recovery.job_convert_again, when_empty=defaults)


def _download(request, job):
    if job.status == Job.Status.EXPIRED:
        return error(409, job.error or "The MP3 of this job was deleted; upload the video again.", code="expired")
    if job.status != Job.Status.DONE:
        return error(409, f"The MP3 is not ready: this job is {job.status}. Wait until it is done.", code="not_ready")
    try:
        return mp3_response(request, job)
    except storage.StoredFileNotFound:
        return error(404, "The MP3 is no longer stored; convert the video again.", code="not_found")
    except storage.StorageError as exc:
        raise StoreUnavailable(str(exc)) from exc


class JobMp3Api(APIView):
    @extend_schema(
        parameters=[JOB_ID],
        responses={
            (200, "audio/mpeg"): OpenApiTypes.BINARY,
            (206, "audio/mpeg"): OpenApiTypes.BINARY,
            **JOB_ERRORS,
            **error_responses(409, 503),
        },
    )
    def get(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        return missing or _download(request, job)


class OriginalUploadApi(_UploadApi):
    """The original system's POST /upload: one multipart file under any field name; 200 as it answered."""

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        parameters=[REPR_DIGEST],
        responses={200: JobSerializer, **UPLOAD_ERRORS},
    )
    def post(self, request):
        if self.reused_from_digest is not None:
            return Response(JobSerializer(self.reused_from_digest, context={"request": request}).data, status=200)
        upload, refusal = _single_upload(request, field=None)
        if refusal:
            return refusal
        return _create_job_response(request, upload, created_status=status.HTTP_200_OK)


# What a fid can look like: an MP3's id (mp3-<job uuid>-<attempt>, or mp3-<job uuid> before attempt ids),
# or a GridFS ObjectId as the original system used.
_WELL_FORMED_FID = re.compile(
    r"mp3-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(-[0-9a-f]{12})?|[0-9a-fA-F]{24}"
)


class OriginalDownloadApi(APIView):
    """The original system's GET /download?fid=<mp3 file id>."""

    @extend_schema(
        parameters=[OpenApiParameter("fid", str, required=True, description="the job's mp3_file_id")],
        responses={
            (200, "audio/mpeg"): OpenApiTypes.BINARY,
            (206, "audio/mpeg"): OpenApiTypes.BINARY,
            **JOB_ERRORS,
            **error_responses(409, 503),
        },
    )
    def get(self, request):
        file_id = request.query_params.get("fid", "").strip()
        if not file_id:
            return error(400, "fid is required: GET /download?fid=<mp3_file_id of a done job>.", code="missing_fid")
        if not _WELL_FORMED_FID.fullmatch(file_id):
            return error(
                400,
                "This fid is malformed; use the mp3_file_id of a done job (mp3-<job id>-<attempt>).",
                code="malformed_id",
            )
        job = selectors.job_get_by_mp3_file_id_for_user(user=request.user, file_id=file_id)
        if job is None:
            return error(
                404, "No MP3 with this fid; check the id (files of other users are not visible).", code="not_found"
            )
        return _download(request, job)


ARCHIVE_IDS = OpenApiParameter(
    "ids",
    str,
    required=True,
    description=(
        f"Comma-separated ids of your done jobs, at most {archives.MAX_ARCHIVE_JOBS} (`ids` may also repeat). "
        "About 100 fit in a URL; POST the same `ids` for more."
    ),
)
ArchiveIdsSerializer = inline_serializer(
    "ArchiveIds",
    {
        "ids": serializers.ListField(
            child=serializers.UUIDField(), max_length=archives.MAX_ARCHIVE_JOBS, help_text="Ids of your done jobs."
        )
    },
)
ArchiveRefusalSerializer = inline_serializer(
    "ArchiveRefusal",
    {
        "detail": serializers.CharField(),
        "code": serializers.CharField(),
        "unknown": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Ids that name none of your jobs."
        ),
        "not_done": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Your jobs that have no MP3 (yet, or any more)."
        ),
        "malformed": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Values that cannot be job ids."
        ),
    },
)
ARCHIVE_RESPONSES = {
    (200, "application/zip"): OpenApiTypes.BINARY,
    400: OpenApiResponse(
        ArchiveRefusalSerializer,
        description="No ids, too many, malformed ones, or ids that are not your done jobs: nothing is sent.",
    ),
    **error_responses(401, 503),
}
# Each value is cut to this in a refusal's lists, so a request of junk is not echoed back at length.
_SHOWN_ID_CHARS = 40


def _requested_ids(request) -> list[str]:
    """The ids asked for, in order, without repeats: `ids` in the query (GET) or the body (POST: a JSON list
    or comma-separated string, or form fields), each value comma-separated."""
    if request.method == "GET":
        values = request.query_params.getlist("ids")
    elif hasattr(request.data, "getlist"):  # a form
        values = request.data.getlist("ids")
    else:
        given = request.data.get("ids", []) if isinstance(request.data, dict) else []
        values = given if isinstance(given, list) else [given]
    ids = [part.strip() for value in values for part in str(value).split(",")]
    return list(dict.fromkeys(part for part in ids if part))


def _archive_refusal(sentence: str, code: str, **lists) -> Response:
    return error(400, sentence, code=code, **{name: ids for name, ids in lists.items() if ids})


class JobArchiveApi(APIView):
    """A ZIP of several done jobs' MP3s, streamed with constant memory (uploads.archives)."""

    @extend_schema(
        summary="Download the MP3s of several done jobs as one ZIP",
        parameters=[ARCHIVE_IDS],
        responses=ARCHIVE_RESPONSES,
    )
    def get(self, request):
        return self._archive(request)

    @extend_schema(
        summary="The same as GET, with the ids in the body (for selections too long for a URL)",
        request={"application/json": ArchiveIdsSerializer, "application/x-www-form-urlencoded": ArchiveIdsSerializer},
        responses=ARCHIVE_RESPONSES,
    )
    def post(self, request):
        return self._archive(request)

    def _archive(self, request):
        wanted = _requested_ids(request)
        if not wanted:
            return _archive_refusal(
                "Name the jobs whose MP3s you want: ?ids=<job id>,<job id>… (ids of your done jobs).", "missing_ids"
            )
        if len(wanted) > archives.MAX_ARCHIVE_JOBS:
            return _archive_refusal(
                f"An archive holds at most {archives.MAX_ARCHIVE_JOBS} MP3s and this request names {len(wanted)}; "
                "ask for them in several archives.",
                "too_many_ids",
            )
        parsed = {value: selectors.job_id_parse(value) for value in wanted}
        malformed = [value[:_SHOWN_ID_CHARS] for value, job_id in parsed.items() if job_id is None]
        if malformed:
            return _archive_refusal(
                f"These are not job ids, so nothing was sent: {', '.join(malformed)}. "
                "Job ids are UUIDs as returned by POST /api/jobs/.",
                "malformed_id",
                malformed=malformed,
            )
        found = {job.id: job for job in selectors.job_list_for_user_by_ids(user=request.user, job_ids=parsed.values())}
        # Another user's job is named as unknown, exactly like an id no job has.
        unknown = [value for value, job_id in parsed.items() if job_id not in found]
        jobs = [found[job_id] for job_id in parsed.values() if job_id in found]
        try:
            lengths = storage.file_lengths(storage.MP3S, [job.mp3_file_id for job in jobs if job.mp3_file_id])
        except storage.StorageError as exc:
            raise StoreUnavailable(str(exc)) from exc
        not_done = [str(job.id) for job in jobs if job.status != Job.Status.DONE or job.mp3_file_id not in lengths]
        if unknown or not_done:
            said = []
            if unknown:
                said.append(f"no job of yours has the id{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
            if not_done:
                said.append(f"{', '.join(not_done)} {'have' if len(not_done) > 1 else 'has'} no MP3 to send (not done)")
            return _archive_refusal(
                f"Nothing was sent: {'; '.join(said)}. Ask only for your done jobs (GET /api/jobs/?status=done).",
                "not_archivable",
                unknown=unknown,
                not_done=not_done,
            )
        return archives.archive_response(jobs, lengths)
