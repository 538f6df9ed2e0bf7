from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from conversion import options as conversion_options
from uploads import selectors, services, storage
from uploads.downloads import mp3_response
from uploads.models import Job
from uploads.serializers import JobSerializer, PresetSerializer, UploadSerializer
from uploads.upload_handlers import UploadTooLarge
from videomp3.api_errors import error

# Multipart framing around the file: a request past this much over the limit cannot fit.
MULTIPART_OVERHEAD = 64 * 1024


class StoreUnavailable(APIException):
    status_code = 503
    default_detail = "The file store is unreachable right now; try again in a minute."


def _refuse_oversized_body(request) -> None:
    """413 before reading the body, when Content-Length already says it is too large."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.MAX_UPLOAD_SIZE + MULTIPART_OVERHEAD:
        raise UploadTooLarge()


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


def _requested_options(request):
    """Per-job options from the form fields beside `file` and the JSON `options` field, or a 400 Response."""
    form = {name: request.data.get(name) for name in request.data if name not in request.FILES and name != "options"}
    raw, errors = conversion_options.merge_sources(form=form, json_text=request.data.get("options"))
    try:
        if errors:
            raise conversion_options.OptionsInvalid(errors)
        return conversion_options.parse_options(raw, default_bitrate=settings.MP3_BITRATE_KBPS), None
    except conversion_options.OptionsInvalid as exc:
        rejected = services.options_rejected(exc)
        return None, error(rejected.status, str(rejected), code=rejected.code, errors=rejected.errors)


def _create_job_response(request, upload, *, created_status: int, options=None) -> Response:
    try:
        job = services.job_create(owner=request.user, upload=upload, options=options)
    except services.UploadRejected as exc:
        if exc.errors:
            return error(exc.status, str(exc), code=exc.code, errors=exc.errors)
        return error(exc.status, str(exc), code=exc.code)
    except storage.StorageError as exc:
        raise StoreUnavailable(str(exc)) from exc
    return Response(JobSerializer(job, context={"request": request}).data, status=created_status)


class JobListCreateApi(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=[s.value for s in Job.Status], required=False)],
        responses=JobSerializer(many=True),
    )
    def get(self, request):
        wanted = request.query_params.get("status")
        if wanted and wanted not in Job.Status.values:
            return error(400, f"Unknown status '{wanted[:32]}'; use one of: {', '.join(Job.Status.values)}.")
        jobs = selectors.job_list_for_user(user=request.user, status=wanted)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={202: JobSerializer})
    def post(self, request):
        _refuse_oversized_body(request)
        upload, refusal = _single_upload(request, field="file")
        if refusal:
            return refusal
        options, refusal = _requested_options(request)
        if refusal:
            return refusal
        return _create_job_response(request, upload, created_status=status.HTTP_202_ACCEPTED, options=options)


class PresetListApi(APIView):
    """The named option presets: `preset=<name>` on upload, individual fields override them."""

    permission_classes = [AllowAny]

    @extend_schema(responses=PresetSerializer(many=True))
    def get(self, request):
        return Response({"results": conversion_options.presets_listing()})


def _job_or_404(request, job_id):
    job = selectors.job_get_for_user(user=request.user, job_id=job_id)
    if job is None:
        return None, error(404, "No such job; check the id (jobs of other users are not visible).")
    return job, None


class JobDetailApi(APIView):
    @extend_schema(responses=JobSerializer)
    def get(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        return missing or Response(JobSerializer(job, context={"request": request}).data)

    @extend_schema(responses={204: None, 202: JobSerializer})
    def delete(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        if missing:
            return missing
        try:
            cancelled = services.job_delete(job=job)
        except storage.StorageError as exc:
            raise StoreUnavailable(str(exc)) from exc
        if cancelled is not None:
            return Response(JobSerializer(cancelled, context={"request": request}).data, status=202)
        return Response(status=204)


class JobRetryApi(APIView):
    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        if missing:
            return missing
        try:
            job = services.job_retry(job=job)
        except services.JobStateConflict as exc:
            return error(409, str(exc))
        except storage.StorageError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return Response(JobSerializer(job, context={"request": request}).data, status=202)


def _download(request, job):
    if job.status != Job.Status.DONE:
        return error(409, f"The MP3 is not ready: this job is {job.status}. Wait until it is done.")
    try:
        return mp3_response(request, job)
    except storage.StoredFileNotFound:
        return error(404, "The MP3 is no longer stored; convert the video again.")
    except storage.StorageError as exc:
        raise StoreUnavailable(str(exc)) from exc


class JobMp3Api(APIView):
    @extend_schema(responses={(200, "audio/mpeg"): OpenApiTypes.BINARY, (206, "audio/mpeg"): OpenApiTypes.BINARY})
    def get(self, request, job_id):
        job, missing = _job_or_404(request, job_id)
        return missing or _download(request, job)


class OriginalUploadApi(APIView):
    """The original system's POST /upload: one multipart file under any field name; 200 as it answered."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={200: JobSerializer})
    def post(self, request):
        _refuse_oversized_body(request)
        upload, refusal = _single_upload(request, field=None)
        if refusal:
            return refusal
        return _create_job_response(request, upload, created_status=status.HTTP_200_OK)


class OriginalDownloadApi(APIView):
    """The original system's GET /download?fid=<mp3 file id>."""

    @extend_schema(
        parameters=[OpenApiParameter("fid", str, required=True, description="the job's mp3_file_id")],
        responses={(200, "audio/mpeg"): OpenApiTypes.BINARY},
    )
    def get(self, request):
        file_id = request.query_params.get("fid", "").strip()
        if not file_id:
            return error(400, "fid is required: GET /download?fid=<mp3_file_id of a done job>.")
        job = selectors.job_get_by_mp3_file_id_for_user(user=request.user, file_id=file_id)
        if job is None:
            return error(404, "No MP3 with this fid; check the id (files of other users are not visible).")
        return _download(request, job)
