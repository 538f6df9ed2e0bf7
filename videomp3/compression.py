"""Gzip for the API's JSON: a poll of the jobs list is mostly repeated keys, and shrinks to a third.

Only JSON: pages carry the CSRF token (Django's GZipMiddleware pads against BREACH, but there is no need to
take the chance), and MP3s are compressed already and served in byte ranges, which gzip would break.
"""

from django.middleware.gzip import GZipMiddleware


class JsonGZipMiddleware(GZipMiddleware):
    def process_response(self, request, response):
        if not response.get("Content-Type", "").startswith("application/json"):
            return response
        return super().process_response(request, response)
