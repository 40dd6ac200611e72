"""A real mosquitto broker for tests: free 127.0.0.1 port, config in a temporary folder.

``Mosquitto(folder).start()`` returns once the broker says it is running; ``stop()`` kills it
(SIGKILL, as a crash or a pulled plug would) and ``start()`` brings it back on the same port.
With ``users`` the broker refuses anonymous clients and checks passwords; with ``tls`` it
speaks only TLS, with a certificate for 127.0.0.1 signed by a throw-away CA (``ca_file``).
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

__all__ = ["Mosquitto", "free_port", "make_tls_files", "require_mosquitto"]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT = 10.0


def require_mosquitto() -> str:
    """The broker binary, or skip the test (CI installs the Debian package ``mosquitto``)."""
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return MOSQUITTO


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Mosquitto:
    """One broker process; restartable on the same port."""

    def __init__(
        self, folder: Path, users: dict[str, str] | None = None, tls: bool = False
    ) -> None:
        self.binary = require_mosquitto()
        self.folder = folder
        self.users = users or {}
        self.tls = tls
        self.ca_file: Path | None = None
        self._cert: Path | None = None
        self._key: Path | None = None
        self.port = free_port()
        self.host = "127.0.0.1"
        self.log: list[str] = []  # the broker's stderr, for failure messages
        self._proc: subprocess.Popen[str] | None = None
        self._drain: threading.Thread | None = None

    def _write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            # as root mosquitto drops to user "mosquitto", who cannot read a 0700 tmp_path
            f"user {getpass.getuser()}",
        ]
        if self.tls:
            if self.ca_file is None:
                self.ca_file, self._cert, self._key = make_tls_files(self.folder / "tls")
            lines += [f"cafile {self.ca_file}", f"certfile {self._cert}", f"keyfile {self._key}"]
        if self.users:
            passwd = self.folder / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwd), user, password],
                    check=True,
                    capture_output=True,
                    timeout=10,
                )
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        conf = self.folder / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> Mosquitto:
        """Start the broker and wait (bounded) until it accepts connections."""
        if self.running:
            return self
        conf = self._write_config()
        proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        ready = threading.Event()

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self.log.append(line.rstrip())
                if " running" in line:
                    ready.set()
            ready.set()  # exited: stop waiting

        self._drain = threading.Thread(target=drain, name="mosquitto-stderr", daemon=True)
        self._drain.start()
        if not ready.wait(START_TIMEOUT) or proc.poll() is not None:
            self.stop()
            raise RuntimeError("mosquitto did not start: " + " | ".join(self.log[-5:]))
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self) -> None:
        """Kill the broker (SIGKILL: no goodbye to its clients) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if self._drain is not None:
            self._drain.join(timeout=10)  # EOF once the broker is gone
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca, cert, key) PEM files."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to make test certificates)")
    folder.mkdir(parents=True, exist_ok=True)
    names = ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    ca_key, ca, key, csr, cert = (folder / name for name in names)
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=vedirect test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)
    return ca, cert, key
