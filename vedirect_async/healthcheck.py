"""``python -m vedirect_async health``: the container health check.

Kept apart from :mod:`vedirect_async.web` and its aiohttp/prometheus imports on purpose: Docker
runs this every few seconds, on a Raspberry Pi (or arm64 under emulation) where importing
aiohttp alone costs a large part of the health check's time budget. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .config import Config, ConfigError, load_config

__all__ = ["cli_health", "health_url"]


def health_url(config: Config) -> str:
    """The /health URL of the service configured by ``config`` (wildcards → loopback)."""
    host = config.http.host
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping the wildcard to loopback, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http.port}/health"


def cli_health(args: argparse.Namespace) -> int:
    """Exit 0 if ``/health`` answers 200, else 1 (Docker reserves 2); one line on stdout."""
    url: str | None = args.url
    if url is None:
        path = args.config
        if path is None and Path("config.toml").is_file():
            path = "config.toml"
        try:
            url = health_url(load_config(path))
        except ConfigError as exc:
            sys.stdout.write(f"unhealthy: {exc}\n")
            return 1
    if not url.startswith(("http://", "https://")):
        sys.stdout.write(f"unhealthy: not an http(s) URL: {url}\n")
        return 1
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310
            status = response.status
            body = response.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536)
        exc.close()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        sys.stdout.write(f"unhealthy: {url}: {reason}\n")
        return 1
    problems: list[str] = []
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        problems = [str(p) for p in json.loads(body).get("problems", [])]
    if status == 200:
        sys.stdout.write("healthy\n")
        return 0
    detail = "; ".join(problems) or f"HTTP {status}"
    sys.stdout.write(f"unhealthy: {detail}\n")
    return 1
