"""Who may talk to the explorer, and how much: a token off loopback, a Host check on it, a body size limit."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convscope.explore.pictures import MAX_BYTES

COOKIE = "convscope_token"
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
MAX_BODY = MAX_BYTES + 64 * 1024  # an upload plus its multipart envelope


def is_loopback(host: str) -> bool:
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without the port: ``'[::1]:8000'`` → ``'[::1]'``."""
    if header.startswith("["):
        return header.split("]")[0] + "]"
    return header.rsplit(":", 1)[0]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def given_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("token "):
        return header[6:].strip()
    return request.query_params.get("token") or request.headers.get("x-convscope-token") or request.cookies.get(COOKIE)


class Guard:
    """ASGI middleware: token (when one is set), Host header (on loopback, against DNS rebinding), body size."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await too_large()(scope, receive, send)
            return
        await self.app(scope, limited(receive), self.with_cookie(request, send))

    def refusal(self, request: Request) -> Response | None:
        if self.token:
            offered = given_token(request)
            if offered is None or not secrets.compare_digest(offered.encode(), self.token.encode()):
                return JSONResponse({"detail": "this explorer needs its token: open the URL it printed "
                                               "(…/?token=…) or send the header 'Authorization: token …'"},
                                    status_code=403)
            return None
        host = host_name(request.headers.get("host") or "")
        if host and not is_loopback(host):
            return JSONResponse({"detail": f"the Host {host!r} is not this computer; open http://127.0.0.1:PORT/ "
                                           "(or start the explorer with --host and its token)"}, status_code=403)
        return None

    def with_cookie(self, request: Request, send: Send) -> Send:
        """After ``?token=`` in a URL, a cookie keeps the page's later requests authorised."""
        if not self.token or request.query_params.get("token") != self.token:
            return send

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/".encode()))
                message = {**message, "headers": headers}
            await send(message)

        return sending


def limited(receive: Receive) -> Receive:
    """Refuse bodies larger than :data:`MAX_BODY` even when they come without a Content-Length."""
    seen = 0

    async def receiving() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise BodyTooLarge
        return message

    return receiving


class BodyTooLarge(Exception):
    pass


def too_large(*_: Any) -> JSONResponse:
    return JSONResponse({"detail": f"the request is larger than {MAX_BYTES // 2**20} MB; send a smaller picture"},
                        status_code=413)
