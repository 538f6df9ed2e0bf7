"""Production-like settings for a real gunicorn in the tests: strict hosts, SSL redirect, the health middleware first.

STATIC_ROOT comes from TEST_STATIC_ROOT, so the test collects static files as the image build
does, into its own temporary folder rather than the working tree.
"""

import os

from videomp3.settings import *  # noqa: F403
from videomp3.settings import MIDDLEWARE

_HEALTH = "videomp3.health.HealthCheckMiddleware"
MIDDLEWARE = [_HEALTH, *[entry for entry in MIDDLEWARE if entry != _HEALTH]]
ROOT_URLCONF = "tests.deploy.urls"
SECURE_SSL_REDIRECT = True
STATIC_ROOT = os.environ["TEST_STATIC_ROOT"]
