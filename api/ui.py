"""The web page that shows what the cluster does: `GET /emulator/ui/` serves the files in emulator/ui/.

Three files (HTML, CSS, one script) and nothing else: the page fetches nothing from outside, and every
call it makes goes to the API it was served by (the same origin, which api/guard.py lets through). The
answers carry headers that keep other pages out of it:

- `Content-Security-Policy: default-src 'self'; frame-ancestors 'none'; ...`: only the page's own script,
  style and connections (no inline script, no eval, no framing by another site);
- `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` (older browsers), `Referrer-Policy: no-referrer`.

The files are public (they hold no cluster data), so they are served without a token even when the API
requires one (api/auth.py): the page then asks for a token and sends it as `Authorization: Bearer`.
Only the names listed in FILES are served; anything else under the prefix is 404.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from emulator import errors

PREFIX = "/emulator/ui"
FOLDER = Path(__file__).resolve().parent.parent / "emulator" / "ui"
FILES = {
    "index.html": "text/html",
    "app.css": "text/css",
    "app.js": "text/javascript",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated: a new emulator version's page replaces the old at once
}


def routes(folder: Path = FOLDER) -> list[web.RouteDef]:
    """The routes to hand to `create_app(..., routes=...)`."""
    page = Page(folder)
    return [
        web.get(PREFIX, page.redirect),
        web.get(PREFIX + "/", page.index),
        web.get(PREFIX + "/{file}", page.file),
    ]


class Page:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        # returned, not raised: the error middleware would turn an HTTPException into a Status
        return web.Response(status=308, headers={**HEADERS, "Location": PREFIX + "/"})

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._serve("index.html")

    async def file(self, request: web.Request) -> web.StreamResponse:
        return self._serve(request.match_info["file"])

    def _serve(self, name: str) -> web.Response:
        content_type = FILES.get(name)
        if content_type is None:
            raise errors.no_such_path()
        try:
            body = (self.folder / name).read_bytes()  # small files, read per request: edits show at once
        except OSError:
            raise errors.StatusError(404, "NotFound", f"the page's file {name} is missing from this install") from None
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)
