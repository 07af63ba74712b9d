"""Who may talk to the explorer, and how much — as Jupyter does it, or stricter.

- **Token** (on by default, every host): sent as ``Authorization: token …`` or ``X-Convscope-Token`` by
  scripts, or as ``?token=`` once in the printed URL; a page opened with it gets an HttpOnly SameSite=Strict
  cookie and is redirected to the same URL without the token.
- **Other web pages** cannot drive it: a request marked by the browser as coming from another origin
  (``Sec-Fetch-Site``, else ``Origin``, else ``Referer``) is refused, except a plain visit to a page.
- **Work** (every ``/api`` request that is not a cheap read, and every non-GET) also needs a proof that no other
  web page sent it: the token in a header or the URL, or the header ``X-Convscope-Request`` — a header an
  ``<img>``, a form or another origin's ``fetch`` cannot send (this server grants no CORS preflight).
  SameSite cookies alone do not suffice: a page on another port of localhost is the *same site*.
- **Host**: without a token, a request whose ``Host`` is not this computer is refused (DNS rebinding).
- **Size**: request bodies over :data:`MAX_BODY` are refused, with or without a Content-Length.
"""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from convscope.explore.pictures import MAX_BYTES

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
MAX_BODY = MAX_BYTES + 64 * 1024  # an upload plus its multipart envelope
REQUEST_HEADER = "x-convscope-request"  # the front end's mark on its own requests
PAGES = ("/", "/api", "/openapi.json")  # what a visit from anywhere may open (no work, nothing private)
# Cheap reads of what is already there; every other /api path starts work and needs a proof of origin.
READS = {"/api/info", "/api/queue", "/api/pictures", "/api/classes", "/api/methods", "/api/picture.png",
         "/api/scan", "/api/scan/thumb.png", "/api/model/convolutions"}
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"same-origin"),
           (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:; style-src 'self' "
                                        b"'unsafe-inline'; media-src 'self' blob: mediastream:; object-src 'none'; "
                                        b"base-uri 'none'; frame-ancestors 'none'; form-action 'none'")]


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


def cookie_name(scope: Scope) -> str:
    """One cookie per port, so that two explorers on one computer do not overwrite each other's token."""
    server = scope.get("server") or ("", 0)
    return f"convscope-token-{server[1] or 0}"


def header_token(request: Request) -> str | None:
    """The token a script sent in a header or the URL (never sent by another page on its own)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("token "):
        return header[6:].strip()
    return request.headers.get("x-convscope-token") or request.query_params.get("token")


def matches(offered: str | None, token: str) -> bool:
    return offered is not None and secrets.compare_digest(offered.encode(), token.encode())


def refuse(status: int, error: str) -> JSONResponse:
    return JSONResponse({"status": status, "error": error}, status_code=status)


def foreign_origin(request: Request) -> str | None:
    """Where a request came from when the browser says it is another origin than this server's; else None."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a {site} page"
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return None if origin.lower() == own else origin
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        found = f"{parts.scheme}://{parts.netloc}".lower()
        return None if found == own else found
    return None


class Guard:
    """ASGI middleware: token, origin and Host checks, body size, security headers (see the module)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        answer = self.refusal(request)
        length = request.headers.get("content-length")
        if answer is None and length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            answer = too_large()
        if answer is None:
            answer = self.redirect_with_cookie(request)
        if answer is not None:
            await answer(scope, receive, with_headers(send))
            return
        await self.app(scope, limited(receive), with_headers(send))

    def refusal(self, request: Request) -> Response | None:
        path, page = request.url.path, is_page(request)
        foreign = foreign_origin(request)
        if foreign is not None and not (page and request.method in ("GET", "HEAD")):
            return refuse(403, f"refused: this request came from {foreign}, not from the explorer's own page "
                               "(other web pages may not use the explorer)")
        offered = header_token(request)
        if self.token:
            cookie = request.cookies.get(cookie_name(request.scope))
            if not (matches(offered, self.token) or matches(cookie, self.token)):
                return refuse(403, "this explorer needs its token: open the URL it printed (…/?token=…) or send "
                                   "the header 'Authorization: token …'")
        else:
            host = host_name(request.headers.get("host") or "")
            if host and not is_loopback(host):
                return refuse(403, f"the Host {host!r} is not this computer; open http://127.0.0.1:PORT/ "
                                   "(or start the explorer with --host and its token)")
        works = request.method not in ("GET", "HEAD") or (path.startswith("/api/") and path not in READS)
        proven = REQUEST_HEADER in request.headers or (self.token and matches(offered, self.token))
        if works and not proven:
            return refuse(403, "refused: a request that starts work needs the header 'X-Convscope-Request: 1' "
                               "or the token in a header ('Authorization: token …'), which other web pages "
                               "cannot send")
        return None

    def redirect_with_cookie(self, request: Request) -> Response | None:
        """A page opened with ``?token=`` (already checked): keep the token in a cookie, clean it from the URL."""
        if not self.token or not is_page(request) or "token" not in request.query_params:
            return None
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urlencode(rest) if rest else "")
        answer = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        answer.set_cookie(cookie_name(request.scope), self.token, httponly=True, samesite="strict", path="/")
        return answer


def is_page(request: Request) -> bool:
    return request.url.path in PAGES or request.url.path.startswith("/static/")


def with_headers(send: Send) -> Send:
    """Every answer says: no sniffing, no framing (clickjacking), scripts and pictures only from here."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
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
    return refuse(413, f"the request is larger than {MAX_BYTES // 2**20} MB; send a smaller picture")
