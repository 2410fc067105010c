"""ASGI guards in front of the app: the Host header, the access token and the upload size limit.

All are plain ASGI middleware (not Starlette's BaseHTTPMiddleware) so they see every
request, the static page and images included, before any body is read.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Sequence
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, quote, unquote

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "lookalike_token"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


async def send_json_error(
    send: Send, status: int, message: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """A complete JSON error response ``{"error": message}``, sent by a guard itself."""
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def host_name(host: str) -> str:
    """The name in a Host header (or a bare IPv6 address), lower-cased, without port or
    brackets: ``"Example.org:8000"`` -> ``"example.org"``, ``"[::1]:8000"`` -> ``"::1"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.partition(":")
    return name if colon and port.isdigit() else host  # several colons: a bare IPv6 address


class HostGate:
    """Answer only requests whose Host header names this server: the loopback names (any
    port) and ``allowed``; anything else is a 400 before the app runs.

    This stops DNS rebinding: a web page whose own host name is re-pointed to 127.0.0.1
    reaches this server as "the same origin", so the browser would let it read every answer,
    but its requests still carry its own name in the Host header.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(host_name(h) for h in (*LOOPBACK_HOSTS, *allowed))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if host_name(host) in self.allowed:
            await self.app(scope, receive, send)
            return
        await send_json_error(
            send,
            400,
            f"this server does not answer to the host name {host[:100]!r}: use "
            "http://127.0.0.1:PORT/, or start it with --allowed-host NAME",
        )


class TokenGate:
    """Every request must carry the token: ``Authorization: Bearer T``, the cookie the page
    gets, or ``?token=T`` (for a first visit and for <img> URLs). A valid ``?token=`` sets
    the cookie (HttpOnly, SameSite=Strict), so the page's own requests need nothing more."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header counts as no cookie
            cookie = SimpleCookie()
        from_cookie = unquote(cookie[TOKEN_COOKIE].value) if TOKEN_COOKIE in cookie else None
        from_query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(
            "token", [None]
        )[0]
        if self._valid(bearer) or self._valid(from_cookie):
            await self.app(scope, receive, send)
            return
        if not self._valid(from_query):
            await send_json_error(
                send,
                401,
                "missing or wrong token (Authorization: Bearer TOKEN, or ?token=TOKEN)",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        value = quote(self.token.decode(), safe="")
        set_cookie = f"{TOKEN_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/".encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"set-cookie", set_cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _valid(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token)


class UploadTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body parsing re-raises it."""


class UploadLimit:
    """Refuse request bodies over ``max_bytes``: by Content-Length up front, else while reading.

    Also adds the security headers to every response."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"upload is larger than the limit of {self.max_bytes / 2**20:g} MB"
        for key, value in scope["headers"]:
            if key.lower() == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await send_json_error(send, 413, message)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge(413, message)
            return msg

        async def send_with_headers(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                msg["headers"] = [*msg.get("headers", []), *SECURITY_HEADERS]
            await send(msg)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except UploadTooLarge:
            if not started:
                await send_json_error(send, 413, message)
