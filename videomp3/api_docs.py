"""/api/docs/: Swagger UI under the site's Content-Security-Policy, loosened only where it must be."""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView


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
