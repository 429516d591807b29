# kern-bot for production: `docker compose up` (compose.yaml) runs PostgreSQL and two replicas.
# Stage 1 builds a virtualenv with kern-bot installed; stage 2 copies only that into a slim image and runs
# it as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kern
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY kern ./kern
COPY bot ./bot
RUN /opt/kern/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 kern \
    && useradd --system --uid 10001 --gid kern --no-create-home kern \
    && mkdir /data && chown kern:kern /data
COPY --from=build /opt/kern /opt/kern
ENV PATH=/opt/kern/bin:$PATH PYTHONUNBUFFERED=1 KERN_DB=/data/kern.db
# Settings come from the environment (or a .env mounted here: it is read from the working directory).
WORKDIR /data
USER 10001:10001
# 3000: the port Slack calls (POST /slack/events; GET /health says only ok or not ok). The operations port
# (KERN_OPS_PORT, 3030: /health with details, /metrics) listens on 127.0.0.1 inside the container unless
# KERN_OPS_HOST says otherwise (compose.yaml opens it to the compose network, never to the host).
EXPOSE 3000
# 200 while the database takes a write and Slack answers (GET /health on the operations port); urlopen
# raises on a 503, so the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3030/health', timeout=4)"]
CMD ["kern-bot", "serve", "--host", "0.0.0.0", "--port", "3000"]
