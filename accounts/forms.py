from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts import services


class ThrottledAuthenticationForm(AuthenticationForm):
    """The browser sign-in, throttled like every other login path."""

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
