"""Content-Security-Policy as a response header.

Django 5.2 has no built-in CSP (it arrives in 6.0), and a <meta> policy cannot carry
`frame-ancestors`; this middleware sends settings.CONTENT_SECURITY_POLICY on every response
that does not set its own.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


def swagger_ui_policy() -> str:
    """The policy for the Swagger UI page: the same, except that Swagger UI sets style attributes as it
    expands operations, which `style-src 'self'` blocks. Scripts stay 'self' only."""
    return settings.CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


class SwaggerUIView(SpectacularSwaggerSplitView):
    """drf-spectacular's split view: its start-up script is a file (?script), so no inline script is needed."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = swagger_ui_policy()
        return response
