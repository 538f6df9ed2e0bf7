from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm, PasswordResetForm, SetPasswordForm
from django.core.exceptions import ValidationError

from accounts import services

STRENGTH_RULES = "At least 8 characters. Not a common password, not only digits, and not too close to your email."


class ThrottledSignInMixin:
    """A sign-in form checked by accounts.services.user_authenticate: one throttle for every login path."""

    def clean(self):
        email = self.cleaned_data.get("username") or ""
        password = self.cleaned_data.get("password") or ""
        try:
            self.user_cache = services.user_authenticate(request=self.request, email=email, password=password)
        except services.LoginThrottled as exc:
            raise forms.ValidationError(exc.sentence, code="throttled") from None
        except services.InvalidCredentials:
            raise self.get_invalid_login_error() from None
        self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class ThrottledAuthenticationForm(ThrottledSignInMixin, AuthenticationForm):
    """The browser sign-in."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That email and password don't match an account. Check them and try again.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email address"
        self.fields["username"].widget = forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"


class ThrottledAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """The Django admin's sign-in (staff only, checked by confirm_login_allowed)."""


class SignUpForm(forms.Form):
    """A new account; the rules themselves live in accounts.services.user_register."""

    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
        help_text="We send a message here when an MP3 is ready.",
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=STRENGTH_RULES,
    )

    def register(self):
        """The new user, or None with the service's sentences added to the fields."""
        try:
            return services.user_register(email=self.cleaned_data["email"], password=self.cleaned_data["password"])
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
            return None


class AppPasswordChangeForm(PasswordChangeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["old_password"].label = "Current password"
        self.fields["new_password1"].help_text = STRENGTH_RULES
        self.fields["new_password2"].label = "Repeat the new password"
        self.fields["new_password2"].help_text = ""


class AppSetPasswordForm(SetPasswordForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].help_text = STRENGTH_RULES
        self.fields["new_password2"].label = "Repeat the new password"
        self.fields["new_password2"].help_text = ""


class AppPasswordResetForm(PasswordResetForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].label = "Email address"
        self.fields["email"].widget.attrs.update({"autocomplete": "email", "autofocus": True})


class EmailSettingsForm(forms.Form):
    email_notifications = forms.BooleanField(
        required=False,
        label="Email me when a conversion is ready or has failed",
        help_text="Off: no job emails at all. Password resets are still sent.",
    )
