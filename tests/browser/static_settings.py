"""The web role as production serves its static files (DEBUG off, hashed and compressed by collectstatic),
collected into the test's own folder (TEST_STATIC_ROOT) rather than the working tree."""

import os

from videomp3.settings import *  # noqa: F403

STATIC_ROOT = os.environ["TEST_STATIC_ROOT"]
