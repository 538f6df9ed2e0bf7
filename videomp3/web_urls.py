"""The browser pages (session sign-in); the API lives under /api/."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views as account_views
from accounts.forms import AppSetPasswordForm
from notifications import views as webhook_views
from uploads import views as upload_views

urlpatterns = [
    path("", upload_views.jobs_page, name="home"),
    path("jobs/<str:job_id>/", upload_views.job_page, name="job-page"),
    # Share links, the podcast feed and their pages.
    path("", include("uploads.sharing_urls")),
    # Sign in, sign up, sign out.
    path("accounts/login/", account_views.SignInView.as_view(), name="login"),
    path("accounts/logout/", account_views.SignOutView.as_view(), name="logout"),
    path("accounts/signup/", account_views.sign_up, name="signup"),
    path("accounts/", account_views.account_page, name="account"),
    path("accounts/webhooks/", webhook_views.webhooks_page, name="webhooks-page"),
    path("accounts/webhooks/<str:endpoint_id>/<slug:action>/", webhook_views.webhook_action, name="webhook-action"),
    path(
        "accounts/webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver/",
        webhook_views.webhook_redeliver,
        name="webhook-page-redeliver",
    ),
    # Password change while signed in (Django's views, the app's templates).
    path("accounts/password/", account_views.PasswordChangeView.as_view(), name="password_change"),
    # Password reset by email (Django's views, the app's templates).
    path("accounts/password/reset/", account_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="accounts/password_reset_confirm.html", form_class=AppSetPasswordForm
        ),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
]
