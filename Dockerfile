# syntax=docker/dockerfile:1
# One image, four roles (see docker/entrypoint.py):
#   docker run IMAGE web | converter | notifier | migrate
# Production dependencies only: requirements.txt and requirements-mysql.txt. The development
# requirements (SecantusDB is GPL-2.0, for `make run` and the tests) never enter this image.
# Bookworm, like the machines the tests run on, so the image's ffmpeg is the one they test.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# The same image by default. docker/image-check, which cannot pull python:3.11-slim, gives the
# builder a stand-in with Python's headers and the runtime one without, as the real image is.
ARG PYTHON_BUILD_IMAGE=${PYTHON_IMAGE}

# --- builder: wheels for every requirement, mysqlclient compiled against the MariaDB client ---
FROM ${PYTHON_BUILD_IMAGE} AS builder
# Debian stable's security updates replace package versions, so pinning them would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential default-libmysqlclient-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt requirements-mysql.txt /src/
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /src/requirements.txt -r /src/requirements-mysql.txt

# --- runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBUG=0 \
    PORT=8000 \
    VAR_DIR=/tmp/videomp3 \
    WORKER_HEARTBEAT_FILE=/tmp/worker-heartbeat

# ffmpeg does the audio work; libmariadb3 is the runtime half of mysqlclient. Debian's ffmpeg,
# for its security updates through apt, is most of the image: its hard dependencies reach OpenGL
# (libavdevice -> libgl1 -> Mesa -> LLVM), and bookworm packages no slimmer ffmpeg. dpkg leaves
# out the documentation, manual pages and translations nobody reads in a container (the
# copyright files stay); the packages stay whole for apt.
# hadolint ignore=DL3008
RUN printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*' \
        >/etc/dpkg/dpkg.cfg.d/videomp3-slim \
    && apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 videomp3 \
    && useradd --system --uid 10001 --gid videomp3 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin videomp3

WORKDIR /app
COPY requirements.txt requirements-mysql.txt ./
# The wheels are mounted, not copied, so they add no layer to the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels -r requirements.txt -r requirements-mysql.txt

# The code stays owned by root: the service user can read it, not change it.
COPY . .
# collectstatic needs settings that load with DEBUG off; these values exist for this step only
# and are not in the image's environment. The byte-code is compiled now because the root
# filesystem is read-only at run time.
RUN SECRET_KEY=collectstatic-only-not-a-secret-0000000000 \
    JWT_SIGNING_KEY=collectstatic-only-not-a-secret-1111111111 \
    ALLOWED_HOSTS=build.invalid \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    MONGODB_URI=mongodb://build.invalid/ \
    AMQP_URL=amqp://build.invalid/ \
    python manage.py collectstatic --noinput \
    && python -m compileall -q /app \
    && rm -f /tmp/collectstatic.sqlite3

USER 10001:10001
EXPOSE 8000
# Fits the role: web answers /healthz; converter and notifier have a fresh heartbeat file.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "/app/docker/entrypoint.py", "healthcheck"]
ENTRYPOINT ["python", "/app/docker/entrypoint.py"]
CMD ["web"]
