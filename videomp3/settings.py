"""Settings for every role, read from the environment (see the README's table).

With nothing set the project runs on the embedded defaults: DEBUG on, SQLite and a
SecantusDB server under var/, an in-process queue and emails written to files.
With DEBUG off it refuses to start without real secrets.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

# An insecure key is only acceptable while DEBUG is on; production must bring its own.
_DEV_ONLY_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = env_secret("SECRET_KEY") or (_DEV_ONLY_KEY if DEBUG else "")
JWT_SIGNING_KEY = env_secret("JWT_SIGNING_KEY") or (_DEV_ONLY_KEY + "-jwt" if DEBUG else "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]" if DEBUG else "")


def _weak_key(key: str) -> bool:
    """Too short, a repeated character or two, or Django's placeholder: a key anyone could guess."""
    return not key or key == _DEV_ONLY_KEY or len(key) < 32 or len(set(key)) < 5 or key.startswith("django-insecure-")


if not DEBUG:
    if _weak_key(SECRET_KEY):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a random string of at least 32 characters when DEBUG is off."
        )
    if _weak_key(JWT_SIGNING_KEY) or JWT_SIGNING_KEY == SECRET_KEY:
        raise ImproperlyConfigured(
            "JWT_SIGNING_KEY must be set to a random string of at least 32 characters, different from SECRET_KEY, when DEBUG is off."
        )
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names this service answers to when DEBUG is off.")

PUBLIC_URL = env_str("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "videomp3",
    "accounts",
    "uploads",
    "conversion",
    "notifications",
]

MIDDLEWARE = [
    # First: answers /healthz, /readyz and /metrics before Host validation and SSL redirect (probes use the pod IP).
    "videomp3.health.HealthCheckMiddleware",
    # Before anything reads a body: past MAX_CONCURRENT_UPLOADS an upload answers 503 unread.
    "uploads.middleware.ConcurrentUploadLimitMiddleware",
    # Outside everything that may read a body: removes the spooled part of an upload cut off mid-way.
    "uploads.middleware.PartialUploadCleanupMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside what builds the body (it compresses the finished response): JSON only, see videomp3/compression.py.
    "videomp3.compression.JsonGZipMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy as a header on every response (Django 5.2 has no built-in CSP).
    "videomp3.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "videomp3.urls"
WSGI_APPLICATION = "videomp3.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Stores: SQL, MongoDB (GridFS), RabbitMQ ----------------------------------------
# Each URL carries a password, so each may come from a mounted secret file (NAME_FILE).
DATABASE_URL = env_secret("DATABASE_URL")
# Empty MONGODB_URI starts an embedded SecantusDB server with its data under var/.
MONGODB_URI = env_secret("MONGODB_URI")
# Empty AMQP_URL uses an in-process queue, valid only when every role runs in one process.
AMQP_URL = env_secret("AMQP_URL")
if not DEBUG:
    # The embedded fallbacks work only when every role runs in one process: a production pod on
    # them would keep its rows in its own /tmp and its messages in its own memory, without a word.
    for _name, _example in (
        ("DATABASE_URL", "mysql://user:pass@host:3306/videomp3"),
        ("MONGODB_URI", "mongodb://user:pass@host:27017/"),
        ("AMQP_URL", "amqp://user:pass@host:5672/%2F"),
    ):
        if not globals()[_name]:
            raise ImproperlyConfigured(
                f"{_name} (or {_name}_FILE, a file holding it) must be set when DEBUG is off, e.g. {_example}."
            )
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'videomp3.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update({"charset": "utf8mb4"})
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, converter and notifier threads share the file in the embedded mode: wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # A file, not memory, so the servers and workers that tests start as processes share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-videomp3-{os.getpid()}.sqlite3")}
# Each test run gets its own test database, so two runs on one machine never drop each other's.
DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", f"test_{DATABASES['default']['NAME']}_{os.getpid()}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

MONGODB_DB = env_str("MONGODB_DB", "videomp3")
QUEUE_PREFIX = env_str("QUEUE_PREFIX")

# --- Accounts and authentication ------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
REGISTRATION_OPEN = env_bool("REGISTRATION_OPEN", DEBUG)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60)
LOGIN_FAILURES_PER_ACCOUNT = env_int("LOGIN_FAILURES_PER_ACCOUNT", 10)
LOGIN_FAILURES_PER_ADDRESS = env_int("LOGIN_FAILURES_PER_ADDRESS", 50)
# The client address comes from X-Forwarded-For only behind this many trusted proxies.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    # Tokens carry a fingerprint of the password hash: a new password, however it is set, refuses older tokens.
    "CHECK_REVOKE_TOKEN": True,
}
# A chain of rotated refresh tokens ends this long after the password sign-in that started it.
JWT_REFRESH_MAX_LIFETIME = timedelta(days=env_int("JWT_REFRESH_MAX_DAYS", 30))
SPECTACULAR_SETTINGS = {
    "TITLE": "videomp3 API",
    "DESCRIPTION": "Upload a video, get its audio as an MP3.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components, so an upload's `file` is `format: binary` (a file part),
    # not the `format: uri` a file field has in responses; clients and Schemathesis send it as a file.
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Uploads and conversion ------------------------------------------------------
MAX_UPLOAD_SIZE = env_int("MAX_UPLOAD_SIZE", 2 * 1024**3)
# Uploads go to a temp file past this size, so a large video is never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR") or None
# What one web process takes in at once (uploads.middleware); one more upload answers 503 with Retry-After
# before its body is read. Two limits: threads, since an upload holds one for minutes (two stay free for
# pages, polls and downloads), and disk, since each upload needs room in FILE_UPLOAD_TEMP_DIR for its body
# and the audio extracted from it (at most as large): it reserves twice its Content-Length out of
# UPLOAD_SPOOL_BYTES, which the web pod's /tmp holds per process (k8s/base/web.yaml). So many small
# uploads go through side by side, and one of MAX_UPLOAD_SIZE always fits.
MAX_CONCURRENT_UPLOADS = env_int("MAX_CONCURRENT_UPLOADS", max(1, env_int("GUNICORN_THREADS", 8) - 2))
UPLOAD_SPOOL_BYTES = env_int("UPLOAD_SPOOL_BYTES", 2 * MAX_UPLOAD_SIZE)
FILE_UPLOAD_HANDLERS = ["uploads.upload_handlers.SizeLimitedTemporaryFileUploadHandler"]
KEEP_SOURCE_VIDEOS = env_bool("KEEP_SOURCE_VIDEOS", False)
# A resumable (tus) upload that receives no byte for this long expires: its partial bytes are removed from
# GridFS by cleanup_storage, and it no longer counts toward the queued-jobs quota. Each PATCH moves it on.
TUS_UPLOAD_EXPIRY_SECONDS = env_int("TUS_UPLOAD_EXPIRY_SECONDS", 24 * 3600)
# Per-user limits (0: none). Stored bytes count the user's videos and MP3s still in GridFS; a new upload
# that would pass the limit answers 429, as does one more job while this many are queued or converting.
QUOTA_BYTES_PER_USER = env_int("QUOTA_BYTES_PER_USER", 10 * 1024**3)
QUOTA_QUEUED_JOBS_PER_USER = env_int("QUOTA_QUEUED_JOBS_PER_USER", 10)
# Finished jobs' files (MP3 and any kept video) are deleted this many days after the job finished (0: never);
# the job stays, marked expired. `manage.py purge_expired` and every converter's housekeeping do it.
RETENTION_DAYS = env_int("RETENTION_DAYS", 7)
MP3_BITRATE_KBPS = env_int("MP3_BITRATE_KBPS", 192)
# The converter copies each video here before ffmpeg reads it (MP4s with the index at the end need seeking).
CONVERSION_TEMP_DIR = env_str("CONVERSION_TEMP_DIR") or None

# --- Reliability (see the README's Guarantees) ------------------------------------
# A converter renews its lease on a job while it works; a lease that runs out marks the attempt dead.
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 60)
# How often each converter sweeps for jobs to recover (expired leases, unpublished or lost messages).
SWEEP_INTERVAL_SECONDS = env_int("SWEEP_INTERVAL_SECONDS", 15)
# How often each converter removes stored files no job needs (cleanup_storage), sparing files younger
# than STORAGE_CLEANUP_MIN_AGE_SECONDS: an upload or a conversion may be writing them right now.
STORAGE_CLEANUP_INTERVAL_SECONDS = env_int("STORAGE_CLEANUP_INTERVAL_SECONDS", 3600)
STORAGE_CLEANUP_MIN_AGE_SECONDS = env_int("STORAGE_CLEANUP_MIN_AGE_SECONDS", 3600)
# A queued job whose message was confirmed this long ago without being taken is published again.
STALE_QUEUED_SECONDS = env_int("STALE_QUEUED_SECONDS", 600)
# A done job still not notified this long after it finished gets its `mp3` message again.
STALE_NOTIFICATION_SECONDS = env_int("STALE_NOTIFICATION_SECONDS", 120)
# A notifier holds a job this long while sending its email; one that dies while sending frees it after this.
NOTIFY_CLAIM_SECONDS = env_int("NOTIFY_CLAIM_SECONDS", 60)
# An email that could not be sent (the mail server down, refusing or silent) is tried again after an
# exponential backoff from NOTIFY_RETRY_BASE_SECONDS (capped at an hour), at most NOTIFY_MAX_ATTEMPTS times.
NOTIFY_RETRY_BASE_SECONDS = env_int("NOTIFY_RETRY_BASE_SECONDS", 30)
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 10)
# Workers that died while converting the same job this many times fail it (a file that kills ffmpeg or the worker).
MAX_CRASH_RECOVERIES = env_int("MAX_CRASH_RECOVERIES", 5)
# A store (MongoDB) unreachable during a conversion is retried with exponential backoff this many times.
MAX_TRANSIENT_RETRIES = env_int("MAX_TRANSIENT_RETRIES", 5)
RETRY_BACKOFF_SECONDS = env_int("RETRY_BACKOFF_SECONDS", 5)
# After the first SIGTERM a converter finishes its job for this long, then stops ffmpeg and hands it back.
SHUTDOWN_GRACE_SECONDS = env_int("SHUTDOWN_GRACE_SECONDS", 25)
# Hard limits on each ffmpeg child: wall time = FFMPEG_TIME_LIMIT_BASE + duration x FFMPEG_TIME_LIMIT_FACTOR.
FFMPEG_TIME_LIMIT_BASE = env_int("FFMPEG_TIME_LIMIT_BASE", 120)
FFMPEG_TIME_LIMIT_FACTOR = env_int("FFMPEG_TIME_LIMIT_FACTOR", 2)
FFMPEG_MEMORY_LIMIT_MB = env_int("FFMPEG_MEMORY_LIMIT_MB", 2048)
# ffmpeg children one web process runs at once at upload (extracting the audio, grabbing the cover frame);
# more uploads reaching that step wait their turn. With FFMPEG_MEMORY_LIMIT_MB it bounds what the web pod's
# memory must hold beside its workers (k8s/base/web.yaml).
UPLOAD_FFMPEG_CONCURRENCY = env_int("UPLOAD_FFMPEG_CONCURRENCY", 2)
# Tests only: named points where a worker SIGKILLs itself (core/failpoints.py).
FAILPOINTS = env_list("FAILPOINTS")
# Touched by the consume loop; a liveness probe checks its age.
WORKER_HEARTBEAT_FILE = env_str("WORKER_HEARTBEAT_FILE")

# --- Health and metrics ------------------------------------------------------------
# Bearer token a Prometheus scraper sends to /metrics; empty turns /metrics off (404).
METRICS_TOKEN = env_secret("METRICS_TOKEN")

# --- Email -----------------------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "emails"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds one SMTP operation may take: a server that accepts the connection and never answers must not
# hold a notifier forever (Django's default is no timeout at all).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "videomp3 <noreply@localhost>")
# django-anymail: ANYMAIL_<SETTING> variables become ANYMAIL["<SETTING>"], e.g. ANYMAIL_MAILGUN_API_KEY.
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): env_secret(name)
    for name in os.environ
    if name.startswith("ANYMAIL_") and not name.endswith("_FILE")
}

# --- Static files, i18n, logging -------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# In the embedded mode static files are served straight from the apps, no collectstatic needed.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTPS and browser security (see the README's Security section) ----------------------
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Off by default so a plain-HTTP install (Compose, minikube) keeps working; production behind TLS turns it on.
# /healthz, /readyz and /metrics answer before the redirect, so probes over plain HTTP still work.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto: without it every request looks like
# plain HTTP and SECURE_SSL_REDIRECT would loop. Only turn it on when the proxy overwrites the header.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Every page's assets are served by the app: no inline script or style, no third-party origin.
# data: images are for the SVG icons Swagger UI's stylesheet embeds.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# LOG_FORMAT=json: one JSON object per line, for log collectors.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"pika": {"level": "WARNING"}},
}
