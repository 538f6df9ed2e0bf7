from django.core.mail.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    """An email provider that is down (stands in for a third party we cannot reach)."""

    def send_messages(self, email_messages):
        raise ConnectionError("the email provider is unreachable")
