from django.urls import path

from uploads import apis, sharing_apis

urlpatterns = [
    path("", apis.JobListCreateApi.as_view(), name="job-list"),
    path("archive", apis.JobArchiveApi.as_view(), name="job-archive"),
    path("check/", apis.UploadCheckApi.as_view(), name="job-upload-check"),  # before <job_id>/, which would take it
    path("<str:job_id>/", apis.JobDetailApi.as_view(), name="job-detail"),
    path("<str:job_id>/retry/", apis.JobRetryApi.as_view(), name="job-retry"),
    path("<str:job_id>/convert/", apis.JobConvertApi.as_view(), name="job-convert"),
    path("<str:job_id>/mp3", apis.JobMp3Api.as_view(), name="job-mp3"),
    path("<str:job_id>/shares/", sharing_apis.JobSharesApi.as_view(), name="job-shares"),
    path("<str:job_id>/shares/<str:share_id>/", sharing_apis.JobShareDetailApi.as_view(), name="job-share-detail"),
]
