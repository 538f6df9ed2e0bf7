from django.urls import path

from uploads import resumable_apis

# No trailing slash on an upload's URL: tus clients take the Location header as it is.
urlpatterns = [
    path("", resumable_apis.ResumableUploadCreateApi.as_view(), name="resumable-upload-create"),
    path("<str:upload_id>", resumable_apis.ResumableUploadApi.as_view(), name="resumable-upload"),
]
