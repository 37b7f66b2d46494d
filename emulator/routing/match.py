"""Request-time routing: which entry of a compiled `ListenerRoutes` a request matches, and the pure parts of
carrying out its `Action` (weighted backend choice, path rewrites, redirect locations, header changes).

Called once per request by the gateway, so `find` does little work per call:

- the host: an exact-host dict lookup, then the wildcards by suffix (one dict lookup per label of the
  request's host, longest suffix first: the most specific pattern wins), then `any_host`;
- within the host: a plan made once per `HostRoutes` (kept in a small cache keyed by identity, since the
  compiled shapes are frozen) maps Exact paths and normalized PathPrefix values to their entries, so a
  request looks up its own path and each of its element-wise prefixes (a handful of dict lookups for any
  number of entries) and checks the remaining conditions (method, headers, query) of the candidates in
  precedence order. Regular expressions (RE2, `google-re2`) are compiled once per pattern.

The model's rules (emulator/routing/model.py): a host found whose entries all fail is a 404 (no fall
through to a less specific host).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from emulator.routing.model import (
    Action,
    Entry,
    HeaderChanges,
    HostRoutes,
    ListenerRoutes,
    Match,
    PathModifier,
    Redirect,
    ServiceBackend,
)

PLAN_CACHE = 4096  # HostRoutes plans (and listener wildcard indexes) kept; all dropped beyond
REGEX_CACHE = 2048  # compiled RE2 patterns kept
WELL_KNOWN_PORTS = {"http": 80, "https": 443}

H = TypeVar("H", str, bytes)


# -- hosts and paths ----------------------------------------------------------------------------------


def host_of(host_header: str) -> str:
    """The host a Host header (or :authority, or SNI) names: lower case, without `:port` and without a
    trailing dot. An IPv6 literal keeps no brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host[1:]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def path_prefix_matches(prefix: str, path: str) -> bool:
    """Element-wise prefix match (Ingress `Prefix`, Gateway API `PathPrefix`): `/foo` matches `/foo`,
    `/foo/` and `/foo/bar`, not `/foobar`; a trailing `/` in `prefix` is ignored."""
    base = prefix.rstrip("/")
    if not base:
        return True
    return path.startswith(base) and (len(path) == len(base) or path[len(base)] == "/")


def _prefix_keys(path: str) -> list[str]:
    """The normalized prefixes (no trailing "/", "" for "/") that match `path`, longest last."""
    keys = [""]
    start = 1
    while True:
        slash = path.find("/", start)
        if slash < 0:
            break
        keys.append(path[:slash])
        start = slash + 1
    whole = path.rstrip("/")
    if whole and whole != keys[-1]:
        keys.append(whole)
    return keys


@functools.lru_cache(maxsize=REGEX_CACHE)
def _compiled_regex(pattern: str) -> Any:
    import re2  # type: ignore[import-untyped]  # (loaded with the first RegularExpression match, as in kinds/customresourcedefinition.py)

    try:
        return re2.compile(pattern)
    except Exception:  # re2.error and friends: such a pattern matches nothing
        return None


def regex_full_match(pattern: str, value: str) -> bool:
    """RE2 full match of `value` (an invalid pattern matches nothing)."""
    compiled = _compiled_regex(pattern)
    return compiled is not None and compiled.fullmatch(value) is not None


def valid_regex(pattern: str) -> bool:
    return _compiled_regex(pattern) is not None


# -- entry conditions ---------------------------------------------------------------------------------


def _query_values(query: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, value)  # the first value of a repeated parameter
    return values


def _others_hold(match: Match, method: str, headers: Mapping[str, str] | None, query: Callable[[], dict[str, str]]) -> bool:
    """The conditions of `match` besides its path."""
    if match.method is not None and match.method != method.upper():
        return False
    for header in match.headers:
        value = headers.get(header.name) if headers is not None else None
        if value is None:
            return False
        if header.type == "RegularExpression":
            if not regex_full_match(header.value, value):
                return False
        elif value != header.value:
            return False
    if match.query:
        params = query()
        for param in match.query:
            got = params.get(param.name)
            if got is None:
                return False
            if param.type == "RegularExpression":
                if not regex_full_match(param.value, got):
                    return False
            elif got != param.value:
                return False
    return True


def path_matches(match: Match, path: str) -> bool:
    if match.path_type == "Exact":
        return path == match.path
    if match.path_type == "RegularExpression":
        return regex_full_match(match.path, path)
    return path_prefix_matches(match.path, path)


def entry_matches(match: Match, path: str, method: str = "GET", headers: Mapping[str, str] | None = None, query: str = "") -> bool:
    """Whether every condition of `match` holds for the request (the slow, obvious way; tests compare
    `find` with it)."""
    return path_matches(match, path) and _others_hold(match, method, headers, lambda: _query_values(query))


# -- plans --------------------------------------------------------------------------------------------

Candidates = list[tuple[int, Entry]]


class _Plan:
    """A HostRoutes' entries by the paths they match: `exact[path]`, `prefix[normalized prefix]`, the
    rest (regular expressions) in `other`; each list in precedence order (entry index)."""

    __slots__ = ("exact", "other", "prefix", "simple")

    def __init__(self, routes: HostRoutes) -> None:
        self.exact: dict[str, Candidates] = {}
        self.prefix: dict[str, Candidates] = {}
        self.other: Candidates = []
        self.simple = True  # no entry has conditions besides its path
        for i, entry in enumerate(routes.entries):
            m = entry.match
            if m.method is not None or m.headers or m.query:
                self.simple = False
            if m.path_type == "Exact":
                self.exact.setdefault(m.path, []).append((i, entry))
            elif m.path_type == "RegularExpression":
                self.other.append((i, entry))
            else:
                self.prefix.setdefault(m.path.rstrip("/"), []).append((i, entry))

    def candidates(self, path: str) -> Candidates:
        """Entries whose path matches, in precedence order."""
        found: Candidates = []
        exact = self.exact.get(path)
        if exact is not None:
            found += exact
        prefix = self.prefix
        if prefix:
            for key in _prefix_keys(path):
                hit = prefix.get(key)
                if hit is not None:
                    found += hit
        for i, entry in self.other:
            if regex_full_match(entry.match.path, path):
                found.append((i, entry))
        if len(found) > 1:
            found.sort(key=_index)
        return found


def _index(item: tuple[int, Entry]) -> int:
    return item[0]


_PLANS: dict[int, tuple[HostRoutes, _Plan]] = {}
_WILDCARDS: dict[int, tuple[object, dict[str, list[tuple[bool, HostRoutes]]]]] = {}


def _plan(routes: HostRoutes) -> _Plan:
    cached = _PLANS.get(id(routes))
    if cached is not None and cached[0] is routes:
        return cached[1]
    if len(_PLANS) >= PLAN_CACHE:
        _PLANS.clear()
    plan = _Plan(routes)
    _PLANS[id(routes)] = (routes, plan)  # the routes are kept alive with it: their id is not reused meanwhile
    return plan


def _wildcard_index(wildcards: tuple[tuple[str, bool, HostRoutes], ...]) -> dict[str, list[tuple[bool, HostRoutes]]]:
    cached = _WILDCARDS.get(id(wildcards))
    if cached is not None and cached[0] is wildcards:
        return cached[1]
    if len(_WILDCARDS) >= PLAN_CACHE:
        _WILDCARDS.clear()
    index: dict[str, list[tuple[bool, HostRoutes]]] = {}
    for suffix, single_label, routes in wildcards:
        index.setdefault(suffix, []).append((single_label, routes))
    _WILDCARDS[id(wildcards)] = (wildcards, index)
    return index


def host_routes(listener: ListenerRoutes, host: str) -> HostRoutes | None:
    """The routes for a host (already normalized by `host_of`): exact, then the most specific wildcard,
    then `any_host`."""
    routes = listener.exact.get(host)
    if routes is not None:
        return routes
    if listener.wildcards:
        index = _wildcard_index(listener.wildcards)
        first = True
        dot = host.find(".")
        while dot > 0:
            for single_label, found in index.get(host[dot:], ()):
                if first or not single_label:
                    return found
            first = False
            dot = host.find(".", dot + 1)
    return listener.any_host


def find_in(routes: HostRoutes, path: str, method: str = "GET", headers: Mapping[str, str] | None = None, query: str = "") -> Entry | None:
    """The first entry of `routes` that the request matches."""
    plan = _plan(routes)
    found = plan.candidates(path)
    if not found:
        return None
    if plan.simple:
        return found[0][1]
    params: dict[str, str] | None = None

    def query_values() -> dict[str, str]:
        nonlocal params
        if params is None:
            params = _query_values(query)
        return params

    for _, entry in found:
        if _others_hold(entry.match, method, headers, query_values):
            return entry
    return None


def find(
    listener: ListenerRoutes, host: str, path: str, method: str = "GET",
    headers: Mapping[str, str] | None = None, query: str = "",
) -> tuple[Entry, HostRoutes] | None:
    """The entry a request matches, with the host's routes; None: no route (a 404). `host` may carry a
    port and a trailing dot; `path` is the path only (no query: that is `query`, without the "?");
    header names in `headers` must be lower case (only read when the host's routes match on headers:
    `HostRoutes.uses_headers`)."""
    routes = host_routes(listener, host_of(host))
    if routes is None:
        return None
    entry = find_in(routes, path, method, headers, query)
    return None if entry is None else (entry, routes)


# -- carrying out an action ---------------------------------------------------------------------------


def pick_backend(action: Action, rnd: float | Callable[[], float]) -> ServiceBackend | None:
    """One backend chosen by weight, with `rnd` a number in [0, 1) (or a function giving one, such as
    `random.random`); None when there is none or every weight is 0 (the gateway answers 500)."""
    backends = action.backends
    if len(backends) == 1:
        return backends[0] if backends[0].weight > 0 else None
    total = sum(b.weight for b in backends if b.weight > 0)
    if total <= 0:
        return None
    value = (rnd() if callable(rnd) else rnd) * total
    for backend in backends:
        if backend.weight <= 0:
            continue
        value -= backend.weight
        if value < 0:
            return backend
    return next(b for b in reversed(backends) if b.weight > 0)


def rewrite_path(path: str, modifier: PathModifier, matched_prefix: str | None) -> str:
    """The path after a URLRewrite's or RequestRedirect's path modifier: ReplaceFullPath gives `value`;
    ReplacePrefixMatch replaces the element-wise prefix the rule matched (the Gateway API's table:
    `/foo/bar` with prefix `/foo` and `/xyz` gives `/xyz/bar`, with "" or "/" gives `/bar`)."""
    if modifier.type == "ReplaceFullPath":
        return modifier.value or "/"
    prefix = (matched_prefix or "/").rstrip("/")
    rest = path[len(prefix):] if path_prefix_matches(prefix, path) else path
    new = modifier.value.rstrip("/") + rest
    if not new.startswith("/"):
        new = "/" + new
    return new


def redirect_location(
    redirect: Redirect, *, scheme: str, host: str, port: int | None, path: str, query: str = "",
    matched_prefix: str | None = None, scheme_ports: Mapping[str, int] | None = None,
) -> str:
    """The Location of a RequestRedirect. `scheme`, `host` (no port), `port` and `path` are the
    request's as its client sees them (`port` the one it connected to); `scheme_ports` maps a scheme to
    the port that serves it (the gateway's own HTTP and HTTPS ports; default 80 and 443), used when the
    redirect changes the scheme without naming a port. The port is left out when it is the scheme's
    well-known one."""
    new_scheme = redirect.scheme or scheme
    if redirect.port is not None:
        new_port = redirect.port
    elif redirect.scheme is not None:
        new_port = (scheme_ports or WELL_KNOWN_PORTS).get(new_scheme, port or 0)
    else:
        new_port = port or 0
    new_host = redirect.hostname or host
    if ":" in new_host and not new_host.startswith("["):
        new_host = f"[{new_host}]"
    authority = new_host if not new_port or WELL_KNOWN_PORTS.get(new_scheme) == new_port else f"{new_host}:{new_port}"
    new_path = rewrite_path(path, redirect.path, matched_prefix) if redirect.path is not None else path
    return f"{new_scheme}://{authority}{new_path}" + (f"?{query}" if query else "")


def apply_header_changes(headers: Sequence[tuple[H, H]], changes: HeaderChanges | None) -> list[tuple[H, H]]:
    """`headers` (name, value) pairs, str or bytes, names in any case, after `changes`: `set` replaces
    every value of a header, `add` appends to it (comma-joined onto the first one present), `remove`
    drops it. A new header keeps the case `changes` gives (lower)."""
    out = list(headers)
    if changes is None:
        return out
    as_bytes = bool(out) and isinstance(out[0][0], bytes)

    def conv(text: str) -> Any:
        return text.encode("latin-1") if as_bytes else text

    for name, value in changes.set:
        key = name.lower()
        out = [(n, v) for n, v in out if _lower(n) != key]
        out.append((conv(name), conv(value)))
    for name, value in changes.add:
        key = name.lower()
        for i, (n, v) in enumerate(out):
            if _lower(n) == key:
                out[i] = (n, v + conv(",") + conv(value))
                break
        else:
            out.append((conv(name), conv(value)))
    if changes.remove:
        gone = {name.lower() for name in changes.remove}
        out = [(n, v) for n, v in out if _lower(n) not in gone]
    return out


def _lower(name: str | bytes) -> str:
    return name.decode("latin-1").lower() if isinstance(name, bytes) else name.lower()
