"""The API's front door against web pages: no page the user happens to open may read or change the cluster.

A browser lets any page send "simple" requests to any address, loopback included (a form POST, a `fetch`
with `mode: "no-cors"` and a text/plain body), and DNS rebinding lets a page's own name point at
127.0.0.1 so that it may even read the answers. Three checks close that, before anything else runs:

- **Host**: the API answers only to names it is known by — any IP literal (a rebinding page always
  sends its own *name*), `localhost` and `*.localhost`, `--api-host`, this machine's name when the API
  listens on every address, the in-cluster names `kubernetes[.default[.svc[.<zone>]]]`, and what
  `--accept-hosts` adds (as `kubectl proxy --accept-hosts` does). Anything else is 403.
- **Origin**: a request that a page sent carries `Origin` (or, for simple GETs, `Sec-Fetch-Site`). It
  passes when it is same-origin or its origin is in `--allow-origins`; a cross-site or same-site page is
  403, and CORS preflights are answered only for the allowed origins.
- **Media type**: a body must be one the API server decodes (JSON, YAML, protobuf and the patch types);
  text/plain, forms, multipart and anything else are 415 and change nothing, as in Kubernetes. No
  Content-Type at all means JSON, as in Kubernetes (a page cannot rely on that: its request carries an
  Origin, checked first).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from api.http import PROTOBUF
from emulator import errors
from emulator.registry.registry import PATCH_TYPES

# What the API server decodes (plus the patch types, for PATCH only).
BODY_TYPES = frozenset({"application/json", "application/yaml", "application/x-yaml", "text/yaml", PROTOBUF})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# Sec-Fetch-Site values a page other than the API's own sends
FOREIGN_SITES = frozenset({"cross-site", "same-site"})


@dataclass(frozen=True)
class BrowserRules:
    hosts: frozenset[str]  # lower case, without port
    origins: frozenset[str]  # scheme://host[:port], lower case

    def host_accepted(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self.hosts or host == "localhost" or host.endswith(".localhost"):
            return True
        return _is_address(host)  # an address: a rebinding page would send its name


@functools.lru_cache(maxsize=256)  # bounded: hosts come from clients; the usual few are parsed once
def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def rules(api_host: str, zone: str, accept_hosts: Iterable[str], allow_origins: Iterable[str]) -> BrowserRules:
    names = {"kubernetes", "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{zone}"}
    if api_host not in ("", "0.0.0.0", "::"):
        names.add(api_host.strip("[]"))
    else:  # every address: the machine is reached by its own name too
        names.update({socket.gethostname(), socket.getfqdn()})
    names.update(h.strip() for h in accept_hosts if h.strip())
    return BrowserRules(
        frozenset(n.lower().rstrip(".") for n in names if n),
        frozenset(o.strip().lower().rstrip("/") for o in allow_origins if o.strip()),
    )


def _host_of(request: web.Request) -> str:
    host = request.host or ""
    if host.startswith("["):  # [::1]:8080
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """The checks as the API's error middleware runs them (api/app.py `create_app(front=...)`): `before` the
    handler, refusing with a StatusError or answering a CORS preflight itself; `after` it, the CORS headers
    of an allowed page. Plain calls, not a middleware of their own: no coroutine layer per request."""

    __slots__ = ("browser",)

    def __init__(self, browser: BrowserRules) -> None:
        self.browser = browser

    def before(self, request: web.Request) -> web.StreamResponse | None:
        browser = self.browser
        host = _host_of(request)
        if not browser.host_accepted(host):
            raise errors.forbidden_request(
                f'the API does not answer to host "{host}" (a web page that points its own name at this machine '
                f"sends such requests): use localhost or an address, or start serve with --accept-hosts {host}"
            )
        headers = request.headers
        origin = headers.get("Origin")
        if origin is None:
            if headers.get("Sec-Fetch-Site", "").lower() in FOREIGN_SITES:
                raise errors.forbidden_request("requests from other web sites are refused (Sec-Fetch-Site: cross-site)")
            allowed_origin = False
        else:
            allowed_origin = origin.lower().rstrip("/") in browser.origins
            if not allowed_origin and origin.lower() != f"{request.scheme}://{request.host}".lower():
                raise errors.forbidden_request(
                    f'requests from web pages are refused (Origin "{origin}"): the API changes a cluster that runs '
                    "commands; to let a page of your own call it, start serve with --allow-origins " + origin
                )
        method = request.method
        if method == "OPTIONS":
            if not allowed_origin:
                raise errors.forbidden_request("CORS preflight refused: no web page may call this API unless serve names its origin with --allow-origins")
            return _preflight(request, origin or "")
        if method in WITH_BODY or "Content-Type" in headers:
            _check_media_type(request)
        return None

    def after(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and not response.prepared and origin.lower().rstrip("/") in self.browser.origins:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"


def _check_media_type(request: web.Request) -> None:
    ctype = request.headers.get("Content-Type")
    media = (ctype or "").split(";", 1)[0].strip().lower()
    if not media:
        return  # read as JSON, as the API server does (the official Python client sends no Content-Type)
    if media in BODY_TYPES or (request.method == "PATCH" and media in PATCH_TYPES):
        return
    raise errors.unsupported_media_type(media)


def _preflight(request: web.Request, origin: str) -> web.Response:
    wanted = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE",
        "Access-Control-Allow-Headers": wanted or "Content-Type, Authorization",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    })
