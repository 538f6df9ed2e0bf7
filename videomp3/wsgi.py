import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videomp3.settings")
application = get_wsgi_application()

# What a killed web worker left from extracting an upload's audio goes as a worker starts.
from django.conf import settings  # noqa: E402 - settings are configured by the line above

from core import workdirs  # noqa: E402

workdirs.remove_stale(settings.FILE_UPLOAD_TEMP_DIR)
