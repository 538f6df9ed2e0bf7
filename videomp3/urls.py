from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.apis import original_login
from uploads import apis as upload_apis
from videomp3 import health, metrics
from videomp3.api_docs import SwaggerUIView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Probes and Prometheus: HealthCheckMiddleware answers them first; these routes name them.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/auth/", include("accounts.urls")),
    path("api/jobs/", include("uploads.urls")),
    path("api/uploads/", include("uploads.resumable_urls")),
    path("api/presets/", upload_apis.PresetListApi.as_view(), name="preset-list"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file (?script), so the page holds under the CSP header.
    path("api/docs/", SwaggerUIView.as_view(url_name="schema"), name="docs"),
    # The original system's endpoints, kept so its clients work unchanged.
    path("login", original_login, name="original-login"),
    path("upload", upload_apis.OriginalUploadApi.as_view(), name="original-upload"),
    path("download", upload_apis.OriginalDownloadApi.as_view(), name="original-download"),
    path("", include("videomp3.web_urls")),
]
