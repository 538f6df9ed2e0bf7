"""Content-Security-Policy as a response header.

Django 5.2 has no built-in CSP (it arrives in 6.0), and a <meta> policy cannot carry
`frame-ancestors`; this middleware sends settings.CONTENT_SECURITY_POLICY on every response
that does not set its own.
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
