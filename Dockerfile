# syntax=docker/dockerfile:1
# The web image: gunicorn serving Howdah, the Procfile's web line. The compose files also
# run the release line (migrations) from it. Dockerfile.worker builds the worker's.
#
# The build stage makes Howdah's wheel (it carries the templates, static files,
# migrations and gunicorn's settings) and a wheel of every dependency; the runtime stage
# installs from those wheels alone, with no index, no compiler and no source tree.
# The Python version the test suite runs on, in one place:
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY setup.py setup.cfg pyproject.toml README.md ./
COPY webapp webapp
COPY tasks tasks
COPY templates templates
COPY migrations migrations
RUN pip wheel --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are mounted for the install only, so no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/howdah-*.whl
# A numeric user, so a platform can tell it is not root without reading /etc/passwd.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin howdah
WORKDIR /app
COPY Procfile ./
USER 10001:10001

# gunicorn touches a file per worker as its heartbeat; on the image's disk-backed /tmp
# that can stall a worker, so the files go to the tmpfs /dev/shm (gunicorn's advice).
ENV GUNICORN_CMD_ARGS="--worker-tmp-dir /dev/shm"
# PORT's default; gunicorn binds 0.0.0.0:PORT.
EXPOSE 8000
# gunicorn's graceful stop: no new connections, requests in flight get WEB_TIMEOUT.
STOPSIGNAL SIGTERM
# Readiness: /readyz answers 200 once the database answers and no migration is pending.
HEALTHCHECK --interval=15s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "webapp.probe"]
CMD ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]
