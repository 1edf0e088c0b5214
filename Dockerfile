# ragbot: the bot, its web chat page and health probes in one container.
# Build from a clean clone: docker build -t ragbot .
# Configure only through the environment (AZURE_OPENAI_*, AZURE_SEARCH_*, MicrosoftApp*, RAGBOT_*).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# 1. Microsoft's Web Chat bundle, from the npm registry (the same version as `make webchat`).
FROM node:22.12.0-bookworm-slim AS webchat
ARG WEBCHAT_VERSION=4.18.1
WORKDIR /build
RUN npm pack --silent "botframework-webchat@${WEBCHAT_VERSION}" \
    && tar -xzf "botframework-webchat-${WEBCHAT_VERSION}.tgz" package/dist/webchat.js

# 2. The project and its runtime dependencies (no dev extras) in a virtual environment.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY rag ./rag
COPY indexing ./indexing
COPY ragbot ./ragbot
COPY manifests ./manifests
COPY --from=webchat /build/package/dist/webchat.js ./bot/web/static/vendor/webchat.js
RUN /opt/venv/bin/pip install --no-cache-dir .

# 3. Runtime: the virtual environment only, run by an unprivileged user.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RAGBOT_HOST=0.0.0.0 \
    RAGBOT_PORT=3978 \
    RAGBOT_DATA_DIR=/data
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/ragbot ragbot \
    && mkdir /data \
    && chown ragbot:ragbot /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /home/ragbot
USER 10001:10001
VOLUME ["/data"]
EXPOSE 3978
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RAGBOT_PORT', '3978'), timeout=4)"]
ENTRYPOINT ["ragbot"]
CMD ["serve"]
