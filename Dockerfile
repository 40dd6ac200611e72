# vedirect_async — image for a Raspberry Pi (linux/arm64, linux/arm/v7) or any amd64 host.
#
#   docker build -t vedirect-async .
#   docker run -d --name vedirect -p 8080:8080 -v vedirect-data:/data vedirect-async
#
# Config: /config/config.toml (bind-mount your own). Data (CSV): /data. HTTP: 0.0.0.0:8080.
# Secrets come from the environment (VEDIRECT_DOMOTICZ__PASSWORD, VEDIRECT_MQTT__PASSWORD).
ARG BASE_IMAGE=python:3.12-slim

# -- stage 1: build the wheels (the project's and its dependencies') ----------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY vedirect_async ./vedirect_async
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# -- stage 2: the runtime image ----------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="vedirect-async" \
      org.opencontainers.image.description="Victron VE.Direct reader feeding Domoticz, CSV, MQTT and HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/vedirect_async"

# A non-root user in the dialout group (owner group of /dev/ttyUSB* on Debian and Raspberry Pi OS).
RUN groupadd --system --gid 10001 vedirect \
 && useradd --system --uid 10001 --gid vedirect --groups dialout --home-dir /data --no-create-home \
            --shell /usr/sbin/nologin vedirect \
 && mkdir -p /config /data \
 && chown vedirect:vedirect /data

COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels "vedirect-async==${VERSION}" \
 && rm -rf /wheels
COPY config.toml /config/config.toml

# Listen on all interfaces inside the container; publish the port to choose who can reach it.
ENV VEDIRECT_HTTP__HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001
# The CSV path in config.toml is relative: it lands in /data.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "vedirect_async", "health", "--url", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["python", "-m", "vedirect_async", "--config", "/config/config.toml"]
CMD ["run"]
