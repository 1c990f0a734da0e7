# Two images from one file (see compose.yaml, which uses both):
#
#   service (the default target): the HTTP service, serving a bundle trained elsewhere and
#     mounted at /app/artifacts/bundles. Small: Python, the service's dependencies and the
#     service/ and artifacts/ packages only (no trainer, no compilers, no pip cache).
#       docker build -t fashion-reco .
#       docker run -p 8000:8000 -v $PWD/artifacts/bundles:/app/artifacts/bundles:ro \
#         -e RECO_REDIS_URL=redis://redis:6379/0 fashion-reco
#   trainer: the offline trainer (python -m training ...), writing bundles to the same path.
#       docker build --target trainer -t fashion-reco-trainer .
#
# Both run as the unprivileged user "reco" (uid 10001), log JSON lines (RECO_LOG_FORMAT) and
# take every setting from RECO_* variables (README, "Configuration").
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 --user-group reco \
    && mkdir -p /app/artifacts/bundles \
    && chown -R reco:reco /app
WORKDIR /app

# -- dependencies, installed into /install and copied into the final images ------------------
FROM base AS build-service
WORKDIR /src
COPY pyproject.toml README.md ./
COPY artifacts ./artifacts
COPY service ./service
RUN pip install --prefix=/install '.[service]'

FROM base AS build-trainer
WORKDIR /src
COPY pyproject.toml README.md ./
COPY artifacts ./artifacts
COPY training ./training
RUN pip install --prefix=/install '.[training]'

# -- the trainer: python -m training train ... (writes bundles, pushes profiles to Redis) -----
FROM base AS trainer
COPY --from=build-trainer /install /usr/local
USER reco
ENV RECO_BUNDLE_DIR=/app/artifacts/bundles \
    OPENBLAS_NUM_THREADS=1 \
    MPLCONFIGDIR=/tmp/matplotlib
ENTRYPOINT ["python", "-m", "training"]
CMD ["train", "--out", "/app/artifacts/bundles"]

# -- the service (default target) ------------------------------------------------------------
FROM base AS service
COPY --from=build-service /install /usr/local
USER reco
ENV RECO_BUNDLE_DIR=/app/artifacts/bundles \
    RECO_LOG_FORMAT=json \
    OPENBLAS_NUM_THREADS=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --start-period=30s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["python", "-m", "service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
