# One image for the release, web and worker processes (see docker-compose.yml).
# The first stage builds Howdah's wheel, which carries the templates, static files and
# migrations (and gunicorn's settings); the image installs it without extras and keeps
# no source, only the Procfile.
FROM python:3.12-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY setup.py setup.cfg pyproject.toml README.md ./
COPY webapp webapp
COPY tasks tasks
COPY templates templates
COPY migrations migrations
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels

COPY Procfile ./

# A numeric user, so a platform can tell it is not root without reading /etc/passwd.
RUN useradd --create-home --uid 10001 howdah
USER 10001
EXPOSE 8000
CMD ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]
