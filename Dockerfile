# syntax=docker/dockerfile:1
# streamwatch: the live service (push API, websocket alert feed, live-ops page, /metrics).
#
# Build:  docker build -t streamwatch:0.1.0 .
# Run:    docker run -d --name streamwatch -p 8080:8080 --stop-timeout 30 \
#           -e STREAMWATCH_API_TOKENS=... -v streamwatch-data:/var/lib/streamwatch streamwatch:0.1.0
# See deploy/README.md (tokens, config volume, healthcheck, Prometheus and Grafana).
#
# Two stages: the first builds wheels (the project and every dependency) so the runtime stage
# installs from local files only and carries no build tooling, sources or pip cache.

# ---- stage 1: wheels ---------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# config/ and detectors/ sit beside src/ because src/streamwatch/defaults/{config,detectors}
# are symlinks to them: the wheel then carries the defaults (`streamwatch check`, `demo`).
COPY pyproject.toml README.md ./
COPY src/ src/
COPY config/ config/
COPY detectors/ detectors/
RUN pip wheel --wheel-dir /wheels .

# ---- stage 2: runtime --------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="streamwatch" \
      org.opencontainers.image.description="Real-time monitoring of live-commerce streams" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    NUMBA_CACHE_DIR=/var/cache/streamwatch/numba

# A fixed numeric uid/gid, so orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 streamwatch \
 && useradd --system --uid 10001 --gid streamwatch --no-create-home \
        --home-dir /var/lib/streamwatch --shell /usr/sbin/nologin streamwatch

# The wheels are bind-mounted from the build stage, never copied: no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels streamwatch

# Configuration a deployment edits (CONTRACTS §6); mount your own over /etc/streamwatch.
COPY config/ /etc/streamwatch/config/
COPY detectors/ /etc/streamwatch/detectors/
RUN mkdir -p /var/lib/streamwatch /var/cache/streamwatch/numba \
 && chown -R streamwatch:streamwatch /var/lib/streamwatch /var/cache/streamwatch

VOLUME ["/etc/streamwatch", "/var/lib/streamwatch"]
WORKDIR /var/lib/streamwatch
EXPOSE 8080

USER 10001:10001

# Liveness only (/healthz); slim has no curl, so Python's urllib asks. A non-2xx raises -> 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

# SIGTERM starts uvicorn's graceful shutdown: stop accepting, drain the queue, flush outputs.
# Give it time: `docker run --stop-timeout 30` / compose `stop_grace_period: 30s`.
STOPSIGNAL SIGTERM

# Exec form: streamwatch is PID 1 and receives the signal itself. Tokens come from the
# environment at run time (STREAMWATCH_API_TOKENS), never from the image.
ENTRYPOINT ["streamwatch"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", \
     "--config", "/etc/streamwatch/config", "--detectors", "/etc/streamwatch/detectors", \
     "--data-dir", "/var/lib/streamwatch"]
