"""The project's routes plus the health and metrics routes (what DEPLOY_NOTES.md asks urls.py to add)."""

from django.urls import path

from videomp3 import health, metrics
from videomp3.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    *project_urlpatterns,
]
