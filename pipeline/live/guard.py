"""What keeps the live page safe from every other web page the user visits (and from a slow or
oversized client), as one ASGI layer in front of the app.

A server on 127.0.0.1 is reachable from the user's browser, so from any page open in it:

* **DNS rebinding**: a foreign name resolving to 127.0.0.1 makes the browser send that name
  as ``Host``. Only loopback names (and the address the server was bound to) are served.
* **Cross-site requests** (``fetch(..., {mode: "no-cors"})``, forms) and **cross-site
  WebSocket hijacking**: the browser sends the foreign page's ``Origin``. A state-changing
  request (anything but GET/HEAD) or a WebSocket whose ``Origin`` is not this server's own is
  refused. Scripts (curl, Python) send no ``Origin`` and are served.
* **Beyond loopback** (``--host 0.0.0.0``): every request needs the session's token (as
  Jupyter does): ``?token=`` on the URL the CLI prints (the page then keeps it in a
  same-site, HTTP-only cookie), or ``Authorization: Bearer``.
* **Resource bounds**: request bodies over ``MAX_BODY`` bytes are refused with 413 before being
  read; a body that does not arrive within ``BODY_TIMEOUT`` seconds ends the request with 408
  (a slowloris holds nothing for long); beyond ``MAX_CONNECTIONS`` requests in flight a new
  one is refused with 503 and closed at once; idle keep-alives end after ``KEEP_ALIVE`` s, and
  a connection whose headers do not arrive within ``HEADER_TIMEOUT`` s is closed (the server's
  HTTP protocol, :func:`header_timeout_protocol`: before its headers a request is not yet
  the guard's to see).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 64 * 1024  # bytes: the API's largest request is a few hundred bytes
BODY_TIMEOUT = 10.0  # seconds for a whole request body to arrive
MAX_CONNECTIONS = 64  # HTTP requests in flight at once: beyond it, 503 and closed
KEEP_ALIVE = 5  # seconds an idle connection is kept
HEADER_TIMEOUT = 10.0  # seconds for a new connection's request headers to arrive
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
COOKIE = "samtrack_token"

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """``Host`` header -> the name without the port (IPv6 brackets removed)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware; see the module docstring.

    ``bound``: the address the server listens on. Loopback: only loopback ``Host`` names are
    served and no token is needed. Anything else: any ``Host`` of the machine, with ``token``.
    """

    def __init__(self, app, *, bound: str = "127.0.0.1", token: str | None = None,
                 max_body: int = MAX_BODY, body_timeout: float = BODY_TIMEOUT,
                 max_requests: int = MAX_CONNECTIONS) -> None:
        self.app = app
        self.loopback = is_loopback(bound)
        self.bound = bound
        self.token = token
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.max_requests = max_requests
        self._active = 0  # HTTP requests in flight (the event loop's thread alone counts)
        if not self.loopback and not token:
            raise ValueError("a server bound beyond loopback needs a token")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await self._refuse(scope, send, *refusal)
            return
        if scope["type"] == "http" and self._active >= self.max_requests:
            # more requests in flight than any page or script makes: refuse and close at once
            # (a flood of half-sent requests then holds no more descriptors than this)
            await self._refuse(scope, send, 503, "too many requests at once")
            return
        if scope["type"] == "http":
            self._active += 1
            try:
                await self._http(scope, receive, send, headers)
            finally:
                self._active -= 1
            return
        await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send,
                    headers: dict[str, str]) -> None:
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._refuse(scope, send, 413, f"request body over {self.max_body} bytes")
            return
        try:
            receive = await self._read_body(receive)
        except _BodyRefused as exc:
            await self._refuse(scope, send, exc.status, exc.reason)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = _host_name(headers.get("host", ""))
        if self.loopback and not is_loopback(host):
            return 403, f"host '{host}' is not served (loopback only)"
        origin = headers.get("origin")
        state_changing = scope["type"] == "websocket" or \
            scope.get("method", "GET") not in ("GET", "HEAD")
        if origin is not None and state_changing:
            parts = urlsplit(origin)
            if parts.netloc.lower() != headers.get("host", "").lower() or \
                    parts.scheme not in ("http", "https"):
                return 403, "cross-origin request refused"
        if self.token is not None and not self._has_token(scope, headers):
            return 401, "this server needs its token (the URL samtrack live printed)"
        return None

    def _has_token(self, scope: Scope, headers: dict[str, str]) -> bool:
        offered = []
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered += query.get("token", [])
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered.append(auth[7:].strip())
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header offers nothing
            cookie = SimpleCookie()
        if COOKIE in cookie:
            offered.append(cookie[COOKIE].value)
        assert self.token is not None
        return any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered)

    async def _read_body(self, receive: Receive) -> Receive:
        """The whole body, read here within the size and time bounds before the app sees
        the request (so the app never waits on a slow client), then replayed to it."""
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                raise _BodyRefused(408, "request body too slow") from None
            if message["type"] != "http.request":
                return receive  # the client went away: the app sees it as usual
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                raise _BodyRefused(413, f"request body over {self.max_body} bytes")
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return replay

    async def _refuse(self, scope: Scope, send: Send, status: int, reason: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body = json.dumps({"detail": reason}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _BodyRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def token_cookie_header(token: str) -> tuple[str, str]:
    """The header that keeps the token for the page's own requests and WebSocket."""
    return "set-cookie", f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"


def header_timeout_protocol(timeout: float = HEADER_TIMEOUT):
    """uvicorn's HTTP protocol (h11) that closes a connection whose first request's headers
    have not all arrived within ``timeout`` seconds: before the headers there is no request
    for the ASGI guard to see, and uvicorn itself waits for them forever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

        def connection_lost(self, exc) -> None:
            self._header_timer.cancel()
            super().connection_lost(exc)

        def _headers_too_slow(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol
