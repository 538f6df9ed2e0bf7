"""Resumable uploads under /api/uploads/: the tus 1.0 protocol (https://tus.io/protocols/resumable-upload),
core with the creation, creation-with-upload, termination, checksum and expiration extensions.

No maintained Python tus server stores where every web replica reaches the bytes (django-tus, tuspyserver
and the like write to local disk), so the protocol is here and the bytes are in GridFS (core.storage).
A complete upload goes through intake.job_create exactly as POST /api/jobs/ does."""

import base64
import binascii
import hashlib
import re

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core import storage
from core.api_errors import ErrorSerializer, error, error_responses
from uploads.apis import StoreUnavailable, _declared_sha256, _parsed_options, _quota_response
from uploads.serializers import JobSerializer
from uploads.services import intake, resumable

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,checksum,expiration"
CHUNK_CONTENT_TYPE = "application/offset+octet-stream"
# hashlib names of the Upload-Checksum algorithms taken, as tus names them.
CHECKSUM_ALGORITHMS = {"sha1": "sha1", "sha256": "sha256", "md5": "md5"}
# Upload-Metadata keys that are not output options: the file's name (tus-js-client and Uppy send
# `filename`/`name` and `filetype`/`type`), its declared SHA-256, and the JSON options.
NAME_KEYS = ("filename", "name")
IGNORED_KEYS = {"filetype", "type", "relativePath"}
METADATA_MAX_CHARS = 16 * 1024
_METADATA_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class _ChunkParser(BaseParser):
    """Lets a chunk's content type through DRF's content negotiation (the session's CSRF check reads
    request.POST) without reading the body, which the view streams into GridFS itself."""

    media_type = CHUNK_CONTENT_TYPE

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


def _tus_headers(response, **headers):
    response["Tus-Resumable"] = TUS_VERSION
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _tus_error(status: int, sentence: str, code: str, **headers) -> Response:
    return _tus_headers(error(status, sentence, code=code), **headers)


def _http_date(moment) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _upload_url(request, upload_id: str) -> str:
    return request.build_absolute_uri(f"/api/uploads/{upload_id}")


def _parse_metadata(header: str) -> tuple[dict[str, str], str | None]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (a key alone has an empty value)."""
    if len(header) > METADATA_MAX_CHARS:
        return {}, f"Upload-Metadata is longer than {METADATA_MAX_CHARS} characters; send only the name and options."
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        key, _, encoded = item.partition(" ")
        if not _METADATA_KEY.fullmatch(key) or key in pairs:
            return {}, f"Upload-Metadata has a malformed or repeated key ({key[:40]!r}); send `key base64value` pairs."
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode() if encoded.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            return {}, f"The Upload-Metadata value of {key!r} is not base64 of UTF-8 text; encode it so."
    return pairs, None


def _version_refused(request) -> Response | None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        return _tus_error(
            412,
            f"This server speaks tus {TUS_VERSION}; send the header Tus-Resumable: {TUS_VERSION}.",
            "tus_version",
            Tus_Version=TUS_VERSION,
        )
    return None


def _non_negative(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() and len(value) < 20 else None


def _checksum(request) -> tuple[tuple[str, bytes] | None, Response | None]:
    header = request.headers.get("Upload-Checksum")
    if header is None:
        return None, None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        return None, _tus_error(
            400,
            f"Upload-Checksum uses {algorithm[:20]!r}; use one of: {', '.join(CHECKSUM_ALGORITHMS)}.",
            "checksum_algorithm",
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        digest = b""
    if len(digest) != hashlib.new(CHECKSUM_ALGORITHMS[algorithm]).digest_size:
        return None, _tus_error(
            400,
            f"Upload-Checksum holds no {algorithm} digest; send `{algorithm} <base64 digest>`.",
            "checksum_malformed",
        )
    return (CHECKSUM_ALGORITHMS[algorithm], digest), None


def _offset_headers(upload: storage.PartialUpload) -> dict:
    return {
        "Upload_Offset": str(upload.offset if upload.state == storage.RECEIVING else upload.length),
        "Upload_Length": str(upload.length),
        "Upload_Expires": _http_date(upload.expires),
        "Cache_Control": "no-store",
    }


def _finished_response(request, upload: storage.PartialUpload, finished: resumable.Finished | None, *, status: int):
    """The answer to the request that brought an upload's last bytes: its job (Content-Location names it),
    or the refusal intake gave the file, in the sentences POST /api/jobs/ gives."""
    if finished is None:  # another request is turning it into a job right now
        return _tus_error(
            423,
            "This upload is being turned into a job right now; GET it in a moment to see the job.",
            "upload_finishing",
            **_offset_headers(upload),
        )
    if finished.refusal is not None:
        exc = finished.refusal
        if isinstance(exc, intake.QuotaExceeded):
            return _tus_headers(_quota_response(exc))
        response = error(exc.status, str(exc), code=exc.code, **({"errors": exc.errors} if exc.errors else {}))
        return _tus_headers(response)
    return _job_response(request, finished.job, upload, status=status)


def _job_response(request, job, upload: storage.PartialUpload, *, status: int) -> Response:
    response = Response(JobSerializer(job, context={"request": request}).data, status=status)
    return _tus_headers(
        response,
        Upload_Offset=str(upload.length),
        Upload_Expires=_http_date(upload.expires),
        Content_Location=f"/api/jobs/{job.id}/",
    )


def _receive_and_finish(request, upload: storage.PartialUpload, *, offset: int, status: int):
    """Append the request's body at `offset`; once the upload is complete, make its job. The response."""
    size = _non_negative(request.META.get("CONTENT_LENGTH") or "0")
    if size is None:
        return _tus_error(400, "Send the chunk with a valid Content-Length header.", "length_required")
    if offset + size > upload.length:
        return _tus_error(
            413,
            f"This chunk would pass the upload's declared length of {upload.length} bytes; send only what remains.",
            "past_upload_length",
        )
    checksum, refusal = _checksum(request)
    if refusal:
        return refusal
    try:
        upload = resumable.resumable_upload_append(
            upload=upload, read=request._request.read, offset=offset, size=size, checksum=checksum
        )
    except storage.PartialChecksumMismatch as exc:
        return _tus_error(460, str(exc), "checksum_mismatch")
    except storage.PartialOffsetMismatch as exc:
        return _tus_error(409, str(exc), "offset_mismatch", Upload_Offset=str(exc.offset))
    except storage.PartialUploadBusy as exc:
        return _tus_error(423, str(exc), "upload_busy")
    except storage.PartialUploadNotFound as exc:
        return _tus_error(404, str(exc), "not_found")
    if upload.offset < upload.length:
        response = HttpResponse(status=204 if status == 200 else status)
        return _tus_headers(response, **_offset_headers(upload))
    return _finished_response(request, upload, _finish(request, upload), status=status)


def _finish(request, upload):
    try:
        return resumable.resumable_upload_finish(owner=request.user, upload=upload)
    except storage.StorageError as exc:
        raise StoreUnavailable(str(exc)) from exc


UPLOAD_ID = OpenApiParameter("upload_id", str, OpenApiParameter.PATH, description="the upload's id (from Location)")
TUS_RESUMABLE = OpenApiParameter(
    "Tus-Resumable", str, OpenApiParameter.HEADER, required=True, description="always `1.0.0`", enum=[TUS_VERSION]
)
UploadStatusSerializer = inline_serializer(
    "ResumableUpload",
    {
        "id": serializers.CharField(),
        "offset": serializers.IntegerField(help_text="bytes received"),
        "length": serializers.IntegerField(),
        "expires": serializers.DateTimeField(),
        "state": serializers.ChoiceField(choices=[storage.RECEIVING, storage.FINISHING, storage.FINISHED]),
        "job": JobSerializer(allow_null=True, help_text="the job the upload became, once finished"),
    },
)
_TUS_MEANINGS = {
    409: "Upload-Offset is not the upload's offset (Upload-Offset in the answer says which is).",
    412: "Tus-Resumable is missing or names another version than 1.0.0.",
    415: "The body is not application/offset+octet-stream.",
    423: "Another request is writing to this upload, or turning it into a job.",
    460: "Upload-Checksum does not match the bytes; none were kept.",
}


def tus_errors(*statuses: int) -> dict:
    """error_responses() with the protocol's own meanings of these statuses."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=_TUS_MEANINGS[status])
        if status in _TUS_MEANINGS
        else error_responses(status)[status]
        for status in statuses
    }


TUS_ERRORS = tus_errors(400, 401, 404, 409, 412, 413, 415, 423, 503)


class ResumableUploadCreateApi(APIView):
    """POST /api/uploads/: create an upload (tus creation), with its first bytes or all (creation-with-upload)."""

    parser_classes = [_ChunkParser]

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "OPTIONS" else super().get_permissions()

    def get_authenticators(self):
        # OPTIONS is the protocol's discovery, answered to anyone; a stale session cookie must not refuse it.
        request = getattr(self, "request", None)  # None while the schema is generated
        return [] if request is not None and request.method == "OPTIONS" else super().get_authenticators()

    @extend_schema(
        summary="The tus protocol's discovery: version, extensions, maximum size, checksum algorithms",
        responses={
            204: OpenApiResponse(description="Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm")
        },
    )
    def options(self, request, *args, **kwargs):
        return _tus_headers(
            HttpResponse(status=204),
            Tus_Version=TUS_VERSION,
            Tus_Extension=TUS_EXTENSIONS,
            Tus_Max_Size=str(settings.MAX_UPLOAD_SIZE),
            Tus_Checksum_Algorithm=",".join(CHECKSUM_ALGORITHMS),
        )

    @extend_schema(
        summary="Create a resumable upload (tus 1.0 creation; with a body, creation-with-upload)",
        description=(
            "Headers: `Upload-Length` (bytes), `Upload-Metadata` (comma-separated `key base64(value)`: `filename`, "
            "the output options as on POST /api/jobs/ (`preset`, `bitrate`, ...) or `options` as JSON, and "
            "optionally `sha256` of the file in hex). The size limit, the quotas and the options are checked "
            "now, before any byte is stored, with POST /api/jobs/'s sentences. A file declared by its SHA-256 "
            "(metadata or RFC 9530 `Repr-Digest`) that dedup serves gets its job at once (201, `Upload-Offset` "
            "equal to the length, the job in the body, `Content-Location` naming it). A body "
            "(`Content-Type: application/offset+octet-stream`) is the upload's first bytes; when they are all "
            "of it, the answer is the job (201), or the upload's refusal."
        ),
        request={CHUNK_CONTENT_TYPE: OpenApiTypes.BINARY},
        parameters=[
            TUS_RESUMABLE,
            OpenApiParameter("Upload-Length", int, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("Upload-Metadata", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("Upload-Checksum", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            201: OpenApiResponse(JobSerializer, description="Location names the upload"),
            **TUS_ERRORS,
            **tus_errors(422, 429, 460),
        },
    )
    def post(self, request):
        refusal = _version_refused(request)
        if refusal:
            return refusal
        if request.headers.get("Upload-Defer-Length"):
            return _tus_error(
                400, "Send the file's size in Upload-Length; deferred lengths are not supported.", "defer_length"
            )
        length = _non_negative(request.headers.get("Upload-Length"))
        if length is None:
            return _tus_error(400, "Send the file's size in bytes in the Upload-Length header.", "length_required")
        metadata, malformed = _parse_metadata(request.headers.get("Upload-Metadata", ""))
        if malformed:
            return _tus_error(400, malformed, "malformed_metadata")
        has_body = (request.META.get("CONTENT_LENGTH") or "0") != "0"
        if has_body and request.content_type != CHUNK_CONTENT_TYPE:
            return _tus_error(415, f"Send the upload's bytes as {CHUNK_CONTENT_TYPE}.", "unsupported_media_type")
        filename = next((metadata[key] for key in NAME_KEYS if metadata.get(key)), "upload")
        form = {
            key: value
            for key, value in metadata.items()
            if key not in NAME_KEYS and key not in IGNORED_KEYS and key not in ("options", "sha256")
        }
        options, refusal = _parsed_options(form, metadata.get("options"))
        if refusal:
            return _tus_headers(refusal)
        sha256 = metadata.get("sha256", "").strip() or _declared_sha256(request)
        if sha256 and not _SHA256_HEX.fullmatch(sha256):
            return _tus_error(
                400, "The sha256 metadata must be the file's SHA-256 in 64 hex digits.", "malformed_metadata"
            )
        try:
            upload, reused = resumable.resumable_upload_create(
                owner=request.user,
                length=length,
                filename=intake.display_filename(filename),
                options=options,
                content_sha256=sha256.lower() if sha256 else None,
            )
        except intake.QuotaExceeded as exc:
            return _tus_headers(_quota_response(exc))
        except intake.UploadRejected as exc:
            return _tus_error(exc.status, str(exc), exc.code)
        except storage.StorageError as exc:
            raise StoreUnavailable(str(exc)) from exc
        if reused is not None:
            response = _job_response(request, reused, upload, status=201)
        elif has_body:
            response = _receive_and_finish(request, upload, offset=0, status=201)
        else:
            response = _tus_headers(HttpResponse(status=201), **_offset_headers(upload))
        if response.status_code == 201:
            response["Location"] = _upload_url(request, upload.upload_id)
        return response


class ResumableUploadApi(APIView):
    """/api/uploads/<id>: HEAD its offset, PATCH bytes at it, DELETE it (termination), GET it (JSON, with its job)."""

    parser_classes = [_ChunkParser]

    def _upload(self, request, upload_id):
        try:
            return resumable.resumable_upload_get(owner=request.user, upload_id=upload_id), None
        except storage.PartialUploadNotFound as exc:
            return None, _tus_error(404, str(exc), "not_found")
        except storage.StorageError as exc:
            raise StoreUnavailable(str(exc)) from exc

    @extend_schema(
        summary="The upload's state as JSON: offset, length, expiry, and the job it became",
        parameters=[UPLOAD_ID],
        responses={200: UploadStatusSerializer, **error_responses(401, 404, 503)},
    )
    def get(self, request, upload_id):
        upload, missing = self._upload(request, upload_id)
        if missing:
            return missing
        job = None
        if upload.job_id:
            job = resumable.job_of_upload(owner=request.user, job_id=upload.job_id)
        data = {
            "id": upload.upload_id,
            "offset": upload.offset if upload.state == storage.RECEIVING else upload.length,
            "length": upload.length,
            "expires": upload.expires,
            "state": upload.state,
            "job": JobSerializer(job, context={"request": request}).data if job else None,
        }
        return _tus_headers(Response(data, headers={"Cache-Control": "no-store"}))

    @extend_schema(
        summary="The upload's offset (tus core): Upload-Offset, Upload-Length, Upload-Expires",
        parameters=[UPLOAD_ID, TUS_RESUMABLE],
        responses={200: None, **tus_errors(401, 404, 412)},
    )
    def head(self, request, upload_id):
        refusal = _version_refused(request)
        if refusal:
            return refusal
        upload, missing = self._upload(request, upload_id)
        if missing:
            return missing
        headers = _offset_headers(upload)
        if upload.job_id:
            headers["Content_Location"] = f"/api/jobs/{upload.job_id}/"
        return _tus_headers(HttpResponse(status=200), **headers)

    @extend_schema(
        summary="Send bytes at the upload's offset (tus core; Upload-Checksum: sha1, sha256 or md5)",
        description=(
            "204 with the new Upload-Offset; 409 when Upload-Offset is not the upload's (ask with HEAD), 423 while "
            "another request writes to it, 460 when Upload-Checksum does not match (nothing kept). The request "
            "that brings the last byte makes the job as POST /api/jobs/ does: 200 with the job "
            "(Content-Location names it), or the refusal in POST /api/jobs/'s sentences (the upload is removed)."
        ),
        request={CHUNK_CONTENT_TYPE: OpenApiTypes.BINARY},
        parameters=[
            UPLOAD_ID,
            TUS_RESUMABLE,
            OpenApiParameter("Upload-Offset", int, OpenApiParameter.HEADER, required=True),
            OpenApiParameter("Upload-Checksum", str, OpenApiParameter.HEADER, required=False),
        ],
        responses={200: JobSerializer, 204: None, **TUS_ERRORS, **tus_errors(422, 429, 460)},
    )
    def patch(self, request, upload_id):
        refusal = _version_refused(request)
        if refusal:
            return refusal
        if request.content_type != CHUNK_CONTENT_TYPE:
            return _tus_error(415, f"Send the upload's bytes as {CHUNK_CONTENT_TYPE}.", "unsupported_media_type")
        offset = _non_negative(request.headers.get("Upload-Offset"))
        if offset is None:
            return _tus_error(400, "Send the offset the bytes start at in the Upload-Offset header.", "offset_required")
        upload, missing = self._upload(request, upload_id)
        if missing:
            return missing
        if upload.state == storage.FINISHED:
            # Its job exists: a client that lost the answer to its last PATCH learns it, and sends no more.
            job = resumable.job_of_upload(owner=request.user, job_id=upload.job_id)
            if job is None:
                return _tus_error(404, "The job this upload became was deleted; upload the file again.", "not_found")
            response = _job_response(request, job, upload, status=200)
            response["Connection"] = "close"  # the body, if any, stays unread
            return response
        if upload.offset == upload.length:
            if offset != upload.length:
                return _tus_error(
                    409,
                    f"The upload holds all its {upload.length} bytes; send none after them.",
                    "offset_mismatch",
                    Upload_Offset=str(upload.length),
                )
            # All bytes arrived but no job was made (a store failure, or the finishing process died): again.
            return _finished_response(request, upload, _finish(request, upload), status=200)
        return _receive_and_finish(request, upload, offset=offset, status=200)

    @extend_schema(
        summary="Remove the upload and its bytes (tus termination)",
        parameters=[UPLOAD_ID, TUS_RESUMABLE],
        responses={204: None, **tus_errors(401, 404, 412, 423)},
    )
    def delete(self, request, upload_id):
        refusal = _version_refused(request)
        if refusal:
            return refusal
        upload, missing = self._upload(request, upload_id)
        if missing:
            return missing
        try:
            resumable.resumable_upload_delete(upload=upload)
        except storage.StorageError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return _tus_headers(HttpResponse(status=204))
