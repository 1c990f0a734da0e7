# The service image: serves a bundle trained elsewhere (mount it at /app/artifacts/bundles).
# Build:  docker build -t fashion-reco .
# Run:    docker run -p 8000:8000 -v $PWD/artifacts/bundles:/app/artifacts/bundles:ro \
#           -e RECO_REDIS_URL=redis://redis:6379/0 fashion-reco
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY artifacts ./artifacts
COPY service ./service
RUN pip install --no-cache-dir --prefix=/install '.[service]'

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 reco
COPY --from=build /install /usr/local
WORKDIR /app
USER reco
ENV RECO_BUNDLE_DIR=/app/artifacts/bundles \
    OPENBLAS_NUM_THREADS=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health').status == 200 else 1)"
CMD ["python", "-m", "service", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
