# Two images from one file (see compose.yaml, which uses both):
#
#   service (the default target): the HTTP service, serving a bundle trained elsewhere and
#     mounted at /app/artifacts/bundles. Small: Python, the service's dependencies and the
#     service/ and artifacts/ packages only (no trainer, no compilers, no pip).
#       docker build -t fashion-reco .
#       docker run -p 8000:8000 -v $PWD/artifacts/bundles:/app/artifacts/bundles:ro \
#         -e RECO_REDIS_URL=redis://redis:6379/0 fashion-reco
#   trainer: the offline trainer (python -m training ...), writing bundles to the same path.
#       docker build --target trainer -t fashion-reco-trainer .
#
# Both run as the unprivileged user "reco" (uid 10001), log JSON lines (RECO_LOG_FORMAT) and
# take every setting from RECO_* variables (README, "Configuration").
#
# PYTHON_IMAGE may name any Debian-based image with Python 3.11+ and its venv module (Debian's
# python3 + python3-venv + python-is-python3 will do) where Docker Hub cannot be reached:
#       docker build --build-arg PYTHON_IMAGE=local/python:3.11-bookworm -t fashion-reco .
#   e.g. made from Debian's mirror with
#       debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3 \
#         bookworm rootfs http://deb.debian.org/debian
#       tar -C rootfs -c . | docker import - local/python:3.11-bookworm
# Build with BuildKit (DOCKER_BUILDKIT=1, or buildx): the legacy builder also builds every
# stage before the target, so "service" would build the trainer's dependencies too.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 10001 --user-group reco \
    && mkdir -p /app/artifacts/bundles \
    && chown -R reco:reco /app
WORKDIR /app

# -- dependencies, installed into the virtualenv /opt/venv, which the final images copy -------
# The dependencies come first, from pyproject.toml alone, so that a change to the code
# reinstalls only the project (pip install --no-deps), not numpy, faiss and the rest.
FROM base AS build
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
# pyproject.toml -> requirements: the core dependencies plus the extra given as argument.
RUN printf '%s\n' \
      'import sys, tomllib' \
      'p = tomllib.load(open("pyproject.toml", "rb"))["project"]' \
      'print("\n".join(p["dependencies"] + p["optional-dependencies"][sys.argv[1]]))' \
      > /tmp/requirements.py

FROM build AS build-service
RUN python /tmp/requirements.py service > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY artifacts ./artifacts
COPY service ./service
RUN pip install --no-deps . \
    && pip uninstall --yes pip setuptools

FROM build AS build-trainer
RUN python /tmp/requirements.py training > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md ./
COPY artifacts ./artifacts
COPY training ./training
RUN pip install --no-deps . \
    && pip uninstall --yes pip setuptools

# -- the trainer: python -m training train ... (writes bundles, pushes profiles to Redis) -----
FROM base AS trainer
# implicit's wheels link the system's OpenMP runtime (numba's OpenMP layer uses it too).
# Numba compiles the candidate blend on first use (a minute or more) and caches it in
# NUMBA_CACHE_DIR: mount a volume at /home/reco/.cache to keep it across runs (compose does).
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && install -d -o reco -g reco /home/reco/.cache
COPY --from=build-trainer /opt/venv /opt/venv
USER reco
ENV RECO_BUNDLE_DIR=/app/artifacts/bundles \
    OPENBLAS_NUM_THREADS=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    NUMBA_CACHE_DIR=/home/reco/.cache/numba
ENTRYPOINT ["python", "-m", "training"]
CMD ["train", "--out", "/app/artifacts/bundles"]

# -- the service (default target) ------------------------------------------------------------
FROM base AS service
COPY --from=build-service /opt/venv /opt/venv
USER reco
ENV RECO_BUNDLE_DIR=/app/artifacts/bundles \
    RECO_LOG_FORMAT=json \
    OPENBLAS_NUM_THREADS=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --start-period=30s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["python", "-m", "service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
