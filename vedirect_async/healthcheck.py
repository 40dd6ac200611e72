"""``python -m vedirect_async health``: the container health check, kept light on purpose.

Docker runs this every interval, on a Raspberry Pi too, so it costs CPU for the whole life of
the container. It imports the standard library only, and only what it needs: a plain
``http://`` URL is fetched over a socket (``http.client`` and ``urllib.request`` would pull in
``ssl`` and ``email``); ``tomllib`` is loaded only when the URL comes from the configuration
file; ``https://`` falls back to ``urllib.request``. Nothing here imports the service's
configuration registry, aiohttp, aiomqtt or the outputs; ``bench/healthprobe.py`` measures
the cost against a bare ``python -c pass``.

Reading the configuration here is deliberately minimal: the ``[http]`` table's ``enabled``,
``host`` and ``port`` and their ``VEDIRECT_HTTP__*`` environment overrides, checked just
enough to build a URL. Whether the rest of the file is valid is ``check-config``'s business;
the probe asks the running service.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs the probe 3 ms
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ProbeError", "config_url", "health_url", "probe"]

MAX_BODY = 65536  # bytes of the /health answer read; its problems list is far shorter
MAX_CONFIG = 1024 * 1024  # a configuration file larger than this is not read
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ENV_PREFIX = "VEDIRECT_HTTP__"


class ProbeError(Exception):
    """Why the probe could not ask the service (one line, shown after ``unhealthy:``)."""


def health_url(host: str, port: int) -> str:
    """The /health URL of a service listening on ``host:port`` (wildcards → loopback)."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping the wildcard to loopback, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/health"


def _read_http_table(path: str) -> Mapping[str, object]:
    import stat  # noqa: PLC0415
    import tomllib  # noqa: PLC0415 - only when the URL comes from the configuration

    try:
        # O_NONBLOCK: a FIFO given as the file must not block the probe before fstat sees it
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as f:  # not pathlib: one import less
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ProbeError(f"{path}: not a regular file")
            if info.st_size > MAX_CONFIG:
                raise ProbeError(f"{path}: larger than {MAX_CONFIG} bytes")
            data = tomllib.loads(f.read(MAX_CONFIG).decode("utf-8"))
    except FileNotFoundError:
        raise ProbeError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProbeError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProbeError(f"{path}: not valid TOML: {exc}") from None
    table = data.get("http", {})
    if not isinstance(table, dict):
        raise ProbeError(f"{path}: [http] is not a table")
    return table


def config_url(path: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The /health URL of the service configured by ``path`` (None: defaults) + environment."""
    from .env_value import env_value  # noqa: PLC0415 - only when the URL comes from the config

    env = os.environ if environ is None else environ
    table: dict[str, object] = dict(_read_http_table(path)) if path is not None else {}
    where = {key: f"{path or '<defaults>'}: [http] {key}" for key in ("enabled", "host", "port")}
    for key in ("enabled", "host", "port"):
        name = ENV_PREFIX + key.upper()
        if name in env:
            table[key] = env_value(env[name])
            where[key] = f"environment: {name}"
    enabled = table.get("enabled", True)
    host = table.get("host", DEFAULT_HOST)
    port = table.get("port", DEFAULT_PORT)
    if not isinstance(enabled, bool):
        raise ProbeError(f"{where['enabled']} = {enabled!r}: expected true or false")
    if not enabled:
        raise ProbeError(f"{where['enabled']} = false: the service serves no /health to ask")
    if not isinstance(host, str):
        raise ProbeError(f"{where['host']} = {host!r}: expected a host name or address")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ProbeError(f"{where['port']} = {port!r}: expected a port number 1 to 65535")
    return health_url(host, port)


def _split_http_url(url: str) -> tuple[str, int, str, str]:
    """(host, port, path, Host header) of an ``http://`` URL, by hand (urllib.parse imports re)."""
    rest = url[len("http://") :]
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    if "@" in authority or not authority:
        raise ProbeError(f"{url}: expected http://host[:port]/path")
    host, port_text = authority, ""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ProbeError(f"{url}: unclosed [ in the address")
        host, after = authority[1:end], authority[end + 1 :]
        if after:
            if not after.startswith(":"):
                raise ProbeError(f"{url}: expected :port after the address")
            port_text = after[1:]
    elif ":" in authority:
        host, port_text = authority.rsplit(":", 1)
    port = 80
    if port_text:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ProbeError(f"{url}: bad port {port_text!r}")
        port = int(port_text)
    return host, port, path.split("#", 1)[0], authority


def _get_http(url: str, timeout: float) -> tuple[int, bytes]:
    """GET a plain ``http://`` URL with HTTP/1.0 over a socket; (status, start of the body)."""
    host, port, path, authority = _split_http_url(url)
    request = f"GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    received = bytearray()
    try:
        # bytes: a str host makes getaddrinfo load the idna codec (and unicodedata)
        family, kind, proto, _name, address = socket.getaddrinfo(
            host.encode("ascii"), port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(request.encode("ascii", "strict"))
            while len(received) < MAX_BODY + 8192:
                chunk = sock.recv(16384)
                if not chunk:
                    break
                received += chunk
    except UnicodeEncodeError:
        raise ProbeError(f"{url}: not an ASCII URL") from None
    except TimeoutError:
        raise ProbeError(f"{url}: timed out after {timeout:g} s") from None
    except OSError as exc:
        raise ProbeError(f"{url}: {exc.strerror or exc}") from None
    head, _sep, body = bytes(received).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not (
        status_line[0].startswith(b"HTTP/") and status_line[1].isdigit()
    ):
        raise ProbeError(f"{url}: not an HTTP answer")
    return int(status_line[1]), body[:MAX_BODY]


def _get_https(url: str, timeout: float) -> tuple[int, bytes]:
    import urllib.error  # noqa: PLC0415 - https only: ssl and email cost a plain probe
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(MAX_BODY)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ProbeError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _fetch(url: str | None, config: str | None, timeout: float) -> tuple[int, bytes]:
    if url is None:
        url = config_url(config)
    if url.startswith("http://"):
        return _get_http(url, timeout)
    if url.startswith("https://"):
        return _get_https(url, timeout)
    raise ProbeError(f"not an http(s) URL: {url}")


def probe(url: str | None, config: str | None, timeout: float) -> int:
    """Exit 0 if ``/health`` answers 200, else 1 (Docker reserves 2); one line on stdout.

    ``url`` wins; without it the URL comes from the configuration file ``config`` (None:
    defaults and environment).
    """
    try:
        status, body = _fetch(url, config, timeout)
    except ProbeError as exc:
        sys.stdout.write(f"unhealthy: {exc}\n")
        return 1
    if status == 200:
        sys.stdout.write("healthy\n")
        return 0
    problems: list[str] = []
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        problems = [str(p) for p in json.loads(body).get("problems", [])]
    detail = "; ".join(problems) or f"HTTP {status}"
    sys.stdout.write(f"unhealthy: {detail}\n")
    return 1
