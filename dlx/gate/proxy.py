"""The login gate `dlx ui` puts in front of an app that asks for a secret: a small authenticating reverse proxy.

Why a proxy: Streamlit's own endpoints (the websocket, file uploads, media, health...) answer
whoever connects, whatever a page then asks, so a login form inside the app cannot keep anyone out.
Here Streamlit listens on 127.0.0.1 only and the gate listens on the address the user chose. A
visitor without the gate's cookie gets its login page (plain HTML, nothing of Streamlit's) or a
refusal, before any request body or websocket is read. The secret (the URL's `?token=` or the form)
sets a signed, HttpOnly, SameSite=Strict cookie whose key is made at each start, so it holds in
every tab of that browser until the app restarts. Requests and websockets with it are streamed to
Streamlit as they come, bodies capped.
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import html
import secrets
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx2
import uvicorn
import websockets
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

from dlx.errors import DlxError
from dlx.gate.auth import Secrets

LOGIN_PATH = "/_dlx/login"
# Streamlit's own endpoints: refused outright without the cookie (no login page, nothing forwarded).
INTERNAL_PREFIXES = ("/_stcore/", "/media/", "/static/", "/component/", "/app/", "/_dlx/")
# Headers that belong to one connection, not to the request or response passed on.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host"}
LOGIN_BODY_MAX = 8 * 1024  # a login form's body: a secret and a path
COOKIE_DAYS = 30  # as Jupyter's; the key changes at each start, which ends every login sooner
MULTIPART_OVERHEAD = 1024 * 1024  # room for an upload's form framing above the file itself
REFUSED = "This app asks for a password or token first: open it in a browser and log in.\n"
WRONG = "That password or token is not right."


def log(message: str) -> None:
    """A line on `dlx ui`'s stderr (its terminal or log), where whoever runs the app looks."""
    print(f"dlx gate {time.strftime('%H:%M:%S')}: {message}", file=sys.stderr, flush=True)


@dataclass
class _Client:
    failures: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Throttle:
    """Failed logins, per client address: each failure is answered later than the last (0.5 s, 1, 2, ... up to
    30 s), and a client's attempts are checked one at a time, so parallel guesses queue behind the delay."""

    def __init__(self, first: float = 0.5, most: float = 30.0, clients: int = 4096) -> None:
        self.first, self.most, self.clients = first, most, clients
        self._seen: collections.OrderedDict[str, _Client] = collections.OrderedDict()

    def delay(self, failures: int) -> float:
        return min(self.first * 2 ** (failures - 1), self.most)

    async def attempt(self, client: str, secrets_: Secrets, given: str | None) -> bool:
        """Whether `given` is the secret; a wrong one is logged and answered after the client's growing delay."""
        state = self._seen.pop(client, None) or _Client()
        self._seen[client] = state  # most recent last; the oldest is forgotten past `clients` addresses
        while len(self._seen) > self.clients:
            self._seen.popitem(last=False)
        async with state.lock:
            if secrets_.accepts(given):
                state.failures = 0
                return True
            state.failures += 1
            wait = self.delay(state.failures)
            log(f"wrong password or token from {client} ({state.failures} in a row); answered after {wait:g} s")
            await asyncio.sleep(wait)
            return False


class Gate:
    """The ASGI app in front of Streamlit at 127.0.0.1:`upstream_port`; `port` names its cookie (one per app)."""

    def __init__(self, secrets_: Secrets, upstream_port: int, port: int, body_max: int) -> None:
        self.secrets = secrets_
        self.upstream = f"127.0.0.1:{upstream_port}"
        self.cookie = f"dlx-gate-{port}"  # per port: browsers share cookies between ports of one host
        self.body_max = body_max
        self.key = secrets.token_bytes(32)  # a fresh key at each start: a restart ends every login
        self.throttle = Throttle()
        self.client: httpx2.AsyncClient | None = None

    # -- the cookie ------------------------------------------------------------------------------

    def _signature(self, nonce: str) -> str:
        return hmac.new(self.key, nonce.encode(), hashlib.sha256).hexdigest()

    def new_cookie(self) -> str:
        nonce = secrets.token_hex(16)
        return (f"{self.cookie}={nonce}.{self._signature(nonce)}; Path=/; HttpOnly; SameSite=Strict; "
                f"Max-Age={COOKIE_DAYS * 86400}")

    def logged_in(self, headers) -> bool:
        nonce, _, signature = _cookies(headers).get(self.cookie, "").partition(".")
        return bool(nonce) and hmac.compare_digest(signature.encode(), self._signature(nonce).encode())

    # -- requests ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(WebSocket(scope, receive, send))
        elif scope["type"] == "http":
            await self._http(Request(scope, receive), send)

    async def _http(self, request: Request, send: Send) -> None:
        path, method = request.url.path, request.method
        if not _same_origin(request.headers):
            return await _answer(send, 403, "Cross-origin requests are refused.\n")
        if path == LOGIN_PATH and method == "POST":
            return await self._form_login(request, send)
        page = method in ("GET", "HEAD") and not path.startswith(INTERNAL_PREFIXES)
        if self.logged_in(request.headers):
            if page and "token" in request.query_params:
                return await _redirect(send, _without_token(request))  # out of the address bar and history
            return await self._forward(request, send)
        if not page:
            return await _answer(send, 401, REFUSED)  # the body is never read
        if "token" in request.query_params:
            if await self.throttle.attempt(_client(request), self.secrets, request.query_params["token"]):
                return await _redirect(send, _without_token(request), self.new_cookie())
            return await _login_page(send, _without_token(request), WRONG)
        await _login_page(send, _target(request))

    async def _form_login(self, request: Request, send: Send) -> None:
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > LOGIN_BODY_MAX:
            return await _answer(send, 413, "A login form is a few hundred bytes.\n")
        try:
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        except ClientDisconnect:
            return
        target = _safe_target(form.get("next", "/"))
        if await self.throttle.attempt(_client(request), self.secrets, form.get("secret")):
            return await _redirect(send, target, self.new_cookie())
        await _login_page(send, target, WRONG)

    async def _forward(self, request: Request, send: Send) -> None:
        """Stream the request to Streamlit and its answer back, the body capped at `body_max` bytes."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.body_max):
            return await _answer(send, 413, f"A request body may hold {self.body_max:,} bytes at most "
                                 "(DLX_UPLOAD_MAX_BYTES).\n")
        has_body = length is not None or "transfer-encoding" in request.headers
        too_large = False

        async def body() -> AsyncIterator[bytes]:
            nonlocal too_large
            seen = 0
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > self.body_max:
                    too_large = True
                    raise ClientDisconnect()
                yield chunk

        client = self._http_client()
        upstream_request = client.build_request(
            request.method, f"http://{self.upstream}{_raw_target(request.scope)}",
            headers=self._upstream_headers(request.headers),
            content=body() if has_body else None)
        try:
            response = await client.send(upstream_request, stream=True)
        except (ClientDisconnect, httpx2.HTTPError):
            if too_large:
                return await _answer(send, 413, f"A request body may hold {self.body_max:,} bytes at most.\n")
            return await _answer(send, 502, "The app behind the gate did not answer.\n")
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower().decode() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (OSError, httpx2.HTTPError):
            pass  # the visitor or the app went away mid-answer: nothing more to send
        finally:
            await response.aclose()

    def _http_client(self) -> httpx2.AsyncClient:
        if self.client is None:  # made on the gate's own event loop, on first use
            self.client = httpx2.AsyncClient(timeout=httpx2.Timeout(300.0, connect=10.0), trust_env=False,
                                             follow_redirects=False)
            del self.client.headers["accept-encoding"]  # only what the visitor asked for
        return self.client

    def _upstream_headers(self, headers) -> list[tuple[str, str]]:
        """The visitor's headers for Streamlit, less the connection's own and the gate's cookie."""
        kept = [(k, v) for k, v in headers.items() if k not in HOP_BY_HOP and k != "cookie"]
        others = "; ".join(f"{name}={value}" for name, value in _cookies(headers).items() if name != self.cookie)
        return kept + ([("cookie", others)] if others else [])

    async def _websocket(self, ws: WebSocket) -> None:
        """Relay a websocket to Streamlit's, once its cookie and its origin are checked (else refused with 403)."""
        if not self.logged_in(ws.headers) or not _same_origin(ws.headers, required=True):
            await ws.close(code=1008)  # before accepting: the server answers the upgrade with 403
            return
        offered = [Subprotocol(p.strip()) for p in ws.headers.get("sec-websocket-protocol", "").split(",")
                   if p.strip()]
        query = f"?{ws.url.query}" if ws.url.query else ""
        cookies = [(k, v) for k, v in self._upstream_headers(ws.headers) if k == "cookie"]
        try:
            upstream = await connect(f"ws://{self.upstream}{ws.url.path}{query}", subprotocols=offered or None,
                                     origin=Origin(f"http://{self.upstream}"), additional_headers=cookies,
                                     max_size=None, proxy=None, user_agent_header=None)
        except (TimeoutError, OSError, websockets.InvalidHandshake):
            await ws.close(code=1011)
            return
        await ws.accept(subprotocol=upstream.subprotocol)
        async with upstream:
            await _relay(ws, upstream)


async def _relay(ws: WebSocket, upstream) -> None:
    """Messages both ways until either side closes; the other side is then closed with the same code."""

    async def inbound() -> None:
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(message.get("code", 1000))
                    return
                await upstream.send(message["bytes"] if message.get("bytes") is not None else message["text"])
        except (WebSocketDisconnect, websockets.ConnectionClosed):
            return

    async def outbound() -> None:
        try:
            async for message in upstream:
                if isinstance(message, bytes):
                    await ws.send_bytes(message)
                else:
                    await ws.send_text(message)
        except (OSError, RuntimeError, websockets.ConnectionClosed):
            return
        code = upstream.close_code or 1000
        try:
            await ws.close(code=code if code != 1006 else 1011)
        except RuntimeError:
            pass  # the visitor is gone already

    tasks = [asyncio.ensure_future(inbound()), asyncio.ensure_future(outbound())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- small answers -------------------------------------------------------------------------------------

def _cookies(headers) -> dict[str, str]:
    found = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            found[name] = value
    return found


def _same_origin(headers, required: bool = False) -> bool:
    """Whether the request's Origin (where a browser sends one) is the host it asked for; a websocket must have it."""
    origin = headers.get("origin")
    if origin is None:
        return not required
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower() != ""


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _raw_target(scope: Scope) -> str:
    """The path and query as the visitor sent them (still percent-encoded), for Streamlit."""
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    return path + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")


def _target(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _without_token(request: Request) -> str:
    kept = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != "token"]
    return request.url.path + (f"?{urlencode(kept)}" if kept else "")


def _safe_target(target: str) -> str:
    """A path on this app to go to after the login; anything else (another site) becomes the app's root."""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith(("//", "/\\")) or parts.scheme or parts.netloc:
        return "/"
    return target


SECURITY_HEADERS = [(b"cache-control", b"no-store"), (b"x-frame-options", b"DENY"),
                    (b"content-security-policy",
                     b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
                    (b"referrer-policy", b"same-origin")]


async def _answer(send: Send, status: int, text: str, content_type: str = "text/plain; charset=utf-8",
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *SECURITY_HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, target: str, cookie: str | None = None) -> None:
    extra = [(b"location", target.encode("latin-1", "replace"))]
    if cookie:
        extra.append((b"set-cookie", cookie.encode()))
    await _answer(send, 303, "", extra=extra)


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>dlx</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:12vh auto;padding:0 1rem;color:#262730}}
input{{width:100%;box-sizing:border-box;padding:.5rem;margin:.4rem 0 .8rem;font-size:1rem}}
button{{padding:.45rem 1.2rem;font-size:1rem}}.error{{color:#b00020}}</style></head>
<body><h1>dlx</h1>
<form method="post" action="{action}">
<label for="secret">Password or token</label>
<input id="secret" name="secret" type="password" autocomplete="current-password" autofocus required>
<input type="hidden" name="next" value="{target}">
<button type="submit">Log in</button>
</form>{error}</body></html>
"""


async def _login_page(send: Send, target: str, error: str = "") -> None:
    shown = f'\n<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    page = LOGIN_PAGE.format(action=LOGIN_PATH, target=html.escape(_safe_target(target), quote=True), error=shown)
    await _answer(send, 401, page, "text/html; charset=utf-8")


# -- serving -------------------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """The gate's listening socket, taken before anything starts so a busy port is named at once."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        raise DlxError(f"--port: cannot listen on {host}:{port} ({err.strerror or err}); choose another --port "
                       "or stop what listens there", field="port") from err
    return sock


class GateServer:
    """The gate served by uvicorn on a thread of `dlx ui`, on a socket bound beforehand; `stop()` ends it."""

    def __init__(self, sock: socket.socket, gate: Gate) -> None:
        self.sock = sock
        config = uvicorn.Config(gate, lifespan="off", log_level="warning", access_log=False, proxy_headers=False,
                                server_header=False, date_header=False, http="h11", ws="websockets-sansio",
                                timeout_graceful_shutdown=3)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="dlx-gate",
                                       daemon=True)

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DlxError("--host: the login gate could not start listening; see the message above",
                               field="host")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(10)
        self.sock.close()
