"""The browser pages (session sign-in); the API lives under /api/."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.forms import ThrottledAuthenticationForm
from uploads import views as upload_views

urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="accounts/login.html", authentication_form=ThrottledAuthenticationForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("jobs/<str:job_id>/", upload_views.job_page, name="job-page"),
]
