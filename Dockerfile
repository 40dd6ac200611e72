# vedirect_async — image for a Raspberry Pi (linux/arm64, linux/arm/v7) or any amd64 host.
#
#   docker build -t vedirect-async .
#   docker run -d --name vedirect -p 8080:8080 -v vedirect-data:/data vedirect-async
#
# Config: /config/config.toml (bind-mount your own). Data (CSV): /data. HTTP: 0.0.0.0:8080.
# Secrets come from the environment (VEDIRECT_DOMOTICZ__PASSWORD, VEDIRECT_MQTT__PASSWORD).
ARG BASE_IMAGE=python:3.12-slim

# -- stage 1: a virtual environment holding the project and its dependencies ---------------------
# Built here, copied whole into the runtime stage: no wheel folder, compiler cache or pip run is
# left in a layer of the final image. Both stages use the same base, so the venv's interpreter
# link (/opt/venv/bin/python -> the base's python) holds in the runtime stage too.
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY vedirect_async ./vedirect_async
RUN python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-cache-dir . \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools

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

COPY --from=build /opt/venv /opt/venv
COPY config.toml /config/config.toml

# Listen on all interfaces inside the container; publish the port to choose who can reach it.
# /opt/venv/bin first: `python` and `vedirect-async` are the venv's.
ENV PATH=/opt/venv/bin:$PATH \
    VEDIRECT_HTTP__HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001
# The CSV path in config.toml is relative: it lands in /data.
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
# /health answers 503 until every device has delivered a valid reading, so start-up is covered by
# --start-period (failures inside it do not count; the first success turns the container healthy),
# not by the interval. Docker runs the first probe one interval after the start: healthy after
# ~30 s; a device that never reads: unhealthy after at most start period + 3 intervals (~150 s).
# Each probe starts a Python process (0.05 s CPU here, ~0.5 s on a Pi), hence 30 s (Docker's
# default) rather than 10 s (docs/deployment.md, "Health check").
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "vedirect_async", "health", "--url", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["python", "-m", "vedirect_async", "--config", "/config/config.toml"]
CMD ["run"]
