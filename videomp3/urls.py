from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.apis import original_login
from accounts.forms import ThrottledAuthenticationForm
from uploads import apis as upload_apis
from uploads import views as upload_views

urlpatterns = [
    path("", RedirectView.as_view(url="/api/docs/", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="accounts/login.html", authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/<str:job_id>/", upload_views.job_page, name="job-page"),
    path("api/auth/", include("accounts.urls")),
    path("api/jobs/", include("uploads.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # The original system's endpoints, kept so its clients work unchanged.
    path("login", original_login, name="original-login"),
    path("upload", upload_apis.OriginalUploadApi.as_view(), name="original-upload"),
    path("download", upload_apis.OriginalDownloadApi.as_view(), name="original-download"),
]
