# syntax=docker/dockerfile:1
# callbridge: `callbridge serve` on port 8000. Built by `azd deploy` in the container registry
# (remoteBuild), so no local Docker engine is needed.

# Wheel stage: callbridge's wheel, compiled here because the codec's C extension
# (callbridge/core/_g711.c) needs a compiler, which the full python image has and the slim one
# lacks. Only the wheel leaves this stage.
FROM python:3.13 AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY callbridge ./callbridge
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Build stage: install that wheel, with Application Insights export (the azure extra) and uvloop
# and orjson (the fast extra), into a virtual environment on the runtime's own base image.
FROM python:3.13-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=wheel /wheels /wheels
RUN python -m venv /opt/venv \
 && for wheel in /wheels/callbridge-*.whl; do \
        /opt/venv/bin/pip install --no-cache-dir "${wheel}[azure,fast]"; \
    done

# Runtime stage: the same base image (the venv's interpreter links to it), the venv, and an
# unprivileged user. No compilers, no pip cache, no source tree.
FROM python:3.13-slim AS runtime
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CALLBRIDGE_HOST=0.0.0.0 \
    CALLBRIDGE_PORT=8000 \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 callbridge \
 && useradd --system --uid 10001 --gid callbridge --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin callbridge
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
# Container Apps uses the Bicep probes instead; this serves `docker run` and image scanners.
# The slim image has no curl, so Python itself asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CALLBRIDGE_PORT', '8000'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
# Exec form: Python is PID 1 and receives SIGTERM itself, so it can drain its calls.
STOPSIGNAL SIGTERM
CMD ["callbridge", "serve"]
