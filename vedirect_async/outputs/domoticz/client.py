"""Domoticz's HTTP API as this output uses it: one request at a time, every answer judged.

Each failure is raised as a typed :class:`~vedirect_async.errors.DeliveryError` at this
boundary (transient: retried with backoff; permanent: a person has to act;
:class:`RejectedPostError`: this one post only) whose reason names what to do; nothing is
classified by message text.
The password never reaches a message: it is sent only in the Basic-auth header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from ... import __version__
from ...errors import PermanentDeliveryError, TransientDeliveryError
from .mapping import TYPES, Mapping, Post

__all__ = [
    "USER_AGENT",
    "Client",
    "DroppedError",
    "RejectedPostError",
    "auth_hint",
    "basic_auth",
    "mask_url",
]

_LOGGER = logging.getLogger(__name__)

USER_AGENT = f"vedirect-async/{__version__}"
_MAX_BODY = 64 * 1024  # a Domoticz answer is tiny; more is not Domoticz


def basic_auth(username: str, password: str) -> dict[str, str]:
    """The pre-emptive Basic-auth header (Domoticz never sends WWW-Authenticate); {} for none.

    aiohttp's own encoder (its ``BasicAuth`` class is deprecated since 3.14); UTF-8, as
    Domoticz compares the decoded bytes.
    """
    if not username:
        return {}
    return {"Authorization": aiohttp.encode_basic_auth(username, password, encoding="utf-8")}


def auth_hint(username: str, *, https: bool) -> str:
    """What a 401 from Domoticz means, for the log, /health and ``domoticz setup``.

    Domoticz's 401 never says why, so every cause that fits the request is listed.
    """
    if not username:
        return (
            "401 Unauthorized: no username configured and this host is not in Domoticz's "
            "Trusted Networks (Setup > Settings > Security); add it there, or set "
            "username/password"
        )
    if https:
        return f"401 Unauthorized: Domoticz rejected user {username!r}: wrong user or password"
    return (
        f"401 Unauthorized for user {username!r}, one of: (1) wrong user or password; "
        "(2) Domoticz 2023.1+ refuses Basic auth over plain HTTP unless 'Allow Basic-Auth "
        "authentication over plain HTTP' is ticked (Setup > Settings > Security), and checks "
        "credentials even from a Trusted Network: tick it, use https://, or remove "
        "username/password and rely on Trusted Networks"
    )


class RejectedPostError(PermanentDeliveryError):
    """Domoticz answered but refused this one post (``ERR`` for an idx or for the Lua parser,
    403 for an idx): a failed delivery, while the other posts of the round still go."""


class DroppedError(TransientDeliveryError):
    """The connection closed without a reply (Domoticz restarting): retried once at once."""


def mask_url(url: URL) -> str:
    """``url`` without user, password and query (for messages)."""
    return str(url.with_user(None).with_password(None).with_query(None))


@dataclass(slots=True)
class Client:
    """One aiohttp session's requests to Domoticz (made by the output in its ``run``)."""

    session: aiohttp.ClientSession
    endpoint: str  # .../json.htm
    shown_url: str  # for messages (no credentials)
    username: str
    https: bool
    timeout: float
    script: str  # the Lua parser of the udevices mode

    async def request(self, query: str) -> tuple[int, bytes]:
        url = URL(f"{self.endpoint}?{query}", encoded=True)
        async with self.session.get(url, allow_redirects=False) as response:
            body = bytearray()
            while len(body) <= _MAX_BODY and (chunk := await response.content.read(8192)):
                body += chunk
            return response.status, bytes(body)

    def judge(self, post: Post, status: int, body: bytes) -> None:
        """Raise the :class:`DeliveryError` an answer means; return if Domoticz took the post."""
        if status == 401:
            raise PermanentDeliveryError(auth_hint(self.username, https=self.https))
        if status == 403:
            if body.lstrip().startswith(b"{"):  # from the handler: this idx or this user
                raise RejectedPostError(
                    f"403 Forbidden for {post.what}: user {self.username or '(trusted)'} may not "
                    "update it (a Viewer user, or the device is not shared with the user)"
                )
            raise PermanentDeliveryError("403 Forbidden from Domoticz (IP banned or blocked?)")
        if status == 404:
            raise PermanentDeliveryError(
                f"404 Not Found at {self.endpoint}: not Domoticz's JSON API at this URL "
                "(wrong port, or a reverse-proxy path missing from url?); Domoticz 2025.1 also "
                "answers 404 to the old type=devices style API, which this service never uses",
            )
        if status >= 500:
            raise TransientDeliveryError(f"HTTP {status} from Domoticz")
        if status != 200:
            raise PermanentDeliveryError(f"HTTP {status} from Domoticz")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise PermanentDeliveryError(
                f"the answer is not Domoticz JSON ({body[:40]!r}): another web server or a proxy "
                f"page at {self.shown_url}?",
            )
        result = answer.get("status")
        if result == "OK":
            return
        if result == "ERR" and post.idx is not None:
            raise RejectedPostError(
                f"Domoticz answered ERR for {post.what}: no device with idx {post.idx} "
                "(deleted, or the idx in [[domoticz.devices]] is wrong)"
            )
        if result == "ERR":
            raise RejectedPostError(
                f"Domoticz answered ERR to udevices for {post.what}: the Lua parser "
                f"scripts/lua_parsers/{self.script} is missing or has a syntax error"
            )
        raise PermanentDeliveryError(
            f"Domoticz answered status {result!r} (an old Domoticz without this command?)",
        )

    async def send(self, post: Post) -> None:
        """One post; a connection dropped without a reply is retried once at once (``udevice``
        is idempotent). Raises :class:`RejectedPostError` for this post alone, another
        :class:`DeliveryError` when Domoticz failed as a whole."""
        try:
            await self._attempt(post)
        except DroppedError:
            await self._attempt(post)

    async def _attempt(self, post: Post) -> None:
        where = self.shown_url
        try:
            status, body = await self.request(post.query)
        except TimeoutError:
            raise TransientDeliveryError(
                f"no answer from {where} within {self.timeout:g} s (Domoticz busy, e.g. "
                "its hourly backup, or hung)",
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise PermanentDeliveryError(
                f"TLS certificate of {where} not trusted ({exc.certificate_error}); for a "
                "self-signed certificate set ca_file (or verify_tls = false)",
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                raise TransientDeliveryError(
                    f"connection refused by {where} (Domoticz not running?)"
                ) from None
            raise TransientDeliveryError(f"cannot connect to {where}: {exc.os_error}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise DroppedError(
                f"{where} closed the connection without a reply ({type(exc).__name__}; "
                "Domoticz restarting or crashed?)",
            ) from None
        except aiohttp.ClientOSError as exc:
            raise DroppedError(f"connection to {where} lost: {exc}") from None
        except aiohttp.ClientError as exc:
            raise TransientDeliveryError(
                f"request to {where} failed: {type(exc).__name__}"
            ) from None
        self.judge(post, status, body)

    # -- start-up probe ---------------------------------------------------------------------

    async def probe(self, mappings: Sequence[Mapping], *, each_idx: bool) -> None:
        """Log Domoticz's version and warn about idx that do not exist (never fails)."""
        try:
            status, body = await self.request("type=command&param=getversion")
            answer = json.loads(body) if status == 200 else {}
            if not isinstance(answer, dict) or answer.get("status") != "OK":
                return
            version = answer.get("version")
            if version is None:
                _LOGGER.info(
                    "domoticz: %s answers, but not to us as a known user (see the 401 hints)",
                    self.shown_url,
                )
                return
            _LOGGER.info("domoticz: %s is Domoticz %s", self.shown_url, version)
            status, body = await self.request("type=command&param=getauth")
            auth = json.loads(body) if status == 200 else {}
            if isinstance(auth, dict) and auth.get("rights") == 0:
                _LOGGER.warning(
                    "domoticz: user %r is a Viewer in Domoticz: every update will be refused "
                    "(403); give the user 'User' rights",
                    auth.get("user"),
                )
            if not each_idx:
                return
            for m in mappings:
                status, body = await self.request(f"type=command&param=getdevices&rid={m.idx}")
                answer = json.loads(body) if status == 200 else {}
                if isinstance(answer, dict) and answer.get("status") == "OK":
                    self._check_device(m, answer.get("result"))
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            _LOGGER.debug("domoticz: start-up probe failed: %r", exc)

    @staticmethod
    def _check_device(m: Mapping, result: object) -> None:
        """Warn when a configured idx does not exist or is not the kind of device configured."""
        if not isinstance(result, list) or not result or not isinstance(result[0], dict):
            _LOGGER.warning(
                "domoticz: idx %d (%s.%s) does not exist in Domoticz", m.idx, m.device, m.label
            )
            return
        kind = (result[0].get("Type"), result[0].get("SubType"))
        expected = TYPES[m.kind]
        if kind[0] != expected[0] or (expected[1] and kind[1] != expected[1]):
            _LOGGER.warning(
                "domoticz: idx %d (%s.%s) is a %s/%s device, but kind = %r expects %s/%s",
                m.idx,
                m.device,
                m.label,
                kind[0],
                kind[1],
                m.kind,
                expected[0],
                expected[1] or "*",
            )
