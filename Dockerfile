# One image for the release, web and worker processes (see docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY setup.cfg pyproject.toml README.md ./
COPY webapp webapp
COPY tasks tasks
RUN pip install .

COPY migrations migrations
COPY templates templates
COPY Procfile ./

RUN useradd --create-home howdah
USER howdah
EXPOSE 8000
CMD ["gunicorn", "-c", "python:webapp.gunicorn_conf", "webapp:create_app()"]
