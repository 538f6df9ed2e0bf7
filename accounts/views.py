"""The browser's account pages: sign in/out/up and passwords, on Django's own auth views."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts import services
from accounts.forms import (
    AppPasswordChangeForm,
    AppPasswordResetForm,
    EmailSettingsForm,
    SignUpForm,
    ThrottledAuthenticationForm,
)


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if target and allowed else default


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "registration_open": settings.REGISTRATION_OPEN}


class SignOutView(auth_views.LogoutView):
    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
def sign_up(request):
    """Create an account (while REGISTRATION_OPEN) and sign it in."""
    if request.user.is_authenticated:
        return HttpResponseRedirect(reverse("home"))
    if not settings.REGISTRATION_OPEN:
        return render(request, "accounts/signup_closed.html", status=403)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.register()
        if user is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to videomp3! Upload a video to get its MP3.")
            return HttpResponseRedirect(_safe_next(request, reverse("home")))
    return render(request, "accounts/signup.html", {"form": form, "next": _safe_next(request, "")})


@login_required
def account_page(request):
    """The account's settings: the job emails on or off."""
    if request.method == "POST":
        form = EmailSettingsForm(request.POST)
        if form.is_valid():
            enabled = form.cleaned_data["email_notifications"]
            services.user_set_email_notifications(user=request.user, enabled=enabled)
            messages.success(request, "Job emails are on." if enabled else "Job emails are off; none will be sent.")
            return HttpResponseRedirect(reverse("account"))
    else:
        form = EmailSettingsForm(initial={"email_notifications": request.user.email_notifications})
    return render(request, "accounts/account.html", {"form": form})


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    form_class = AppPasswordChangeForm
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password is changed. Other devices were signed out.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Emails a one-time link; the link is built on PUBLIC_URL, never on the request's Host header."""

    template_name = "accounts/password_reset_form.html"
    form_class = AppPasswordResetForm
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form):
        self.extra_email_context = {"public_url": settings.PUBLIC_URL}
        return super().form_valid(form)
