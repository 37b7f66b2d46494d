"""HTTP plumbing shared by the handlers: JSON responses, Status errors, request bodies and query flags."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import orjson
import yaml
from aiohttp import web

from api.protobuf import ProtobufError, decode_k8s_protobuf
from emulator import errors, limits

T = TypeVar("T")

MAX_BODY = 3 * 1024 * 1024  # the API server's limit for a request body
BODY_TIMEOUT = 10.0  # seconds a request body may take to arrive (loopback, or a LAN: plenty for 3 MiB)
OFF_LOOP_BYTES = 64 * 1024  # bodies (for a patch: stored objects too) larger than this are parsed and validated on a worker thread, the collector paused
CONTENT_ENCODINGS = ("", "identity", "gzip", "deflate")
ZLIB_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
BODY_BROKEN = web.RequestKey("body_broken", bool)  # the body could not be read: the connection must close
JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml")


# libyaml's parser where PyYAML was built with it (several times faster than the pure-Python one)
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """YAML as Kubernetes reads it: `2024-01-01` stays a string (in an annotation, say), not a date."""


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def json_response(body: Any, status: int = 200, content_type: str = JSON, warnings: list[str] | None = None) -> web.Response:
    # the Content-Type given as a header: aiohttp would add "; charset=utf-8" to a content_type, which
    # breaks kubectl's discovery parsing
    response = web.Response(
        body=body if isinstance(body, bytes) else orjson.dumps(body), status=status, headers={"Content-Type": content_type}
    )
    if warnings:
        for warning in bounded_warnings(warnings):
            response.headers.add("Warning", warning_value(warning))
    return response


WARNINGS_TOTAL = 4 * 1024  # characters of warning text a response carries in full (the API server's recorder)
WARNING_TRUNCATED = 256  # past that, what is kept of each warning


def bounded_warnings(warnings: list[str]) -> list[str]:
    """The warnings a response carries, by the API server's warning recorder's rules: each text once, in
    full while their text adds up to at most 4 Ki characters; once one would pass that, every warning so
    far and after is cut to 256 characters, and none is added once 4 Ki is reached again. A request that
    draws 100,000 warnings (a manifest of unknown fields) gets a few dozen headers, not megabytes of them."""
    kept: list[str] = []
    seen: set[str] = set()
    written, truncating = 0, False
    for text in warnings:
        if truncating and written >= WARNINGS_TOTAL:
            break
        if not text or text in seen:
            continue
        seen.add(text)
        if truncating:
            text = text[:WARNING_TRUNCATED]
        if written + len(text) <= WARNINGS_TOTAL or truncating:
            kept.append(text)
            written += len(text)
            continue
        truncating = True  # the replay: what was kept in full, and this one, cut
        kept = [each[:WARNING_TRUNCATED] for each in (*kept, text)]
        written = sum(map(len, kept))
    return kept


def warning_value(text: str) -> str:
    """A `Warning` header's value as the API server writes it (kubectl prints `Warning: <text>`)."""
    return f'299 - "{_quote(text)}"'


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def status_response(error: errors.StatusError) -> web.Response:
    # ended by a newline, as the API server's JSON encoder ends every body
    return json_response(orjson.dumps(error.status()) + b"\n", status=error.code)


def media_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or JSON).split(";", 1)[0].strip().lower()


async def read_body(request: web.Request) -> bytes:
    """The whole request body, refused with 413 past the API server's 3 MiB limit, with 408 when it does
    not arrive within BODY_TIMEOUT (a client that trickles it holds nothing for long), 415 for a
    Content-Encoding the server does not decode and 400 for a body its encoding does not match.
    Compressed bodies are inflated here, bounded by the same limit (a small gzip bomb stays small)."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in CONTENT_ENCODINGS:
        raise errors.StatusError(
            415, "UnsupportedMediaType", f'unsupported Content-Encoding "{encoding}": send the body as is, or gzip or deflate it'
        )
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    inflate = zlib.decompressobj(ZLIB_WBITS[encoding]) if encoding in ZLIB_WBITS else None
    content = request.content
    if inflate is None and content.is_eof():  # all of it has arrived (the usual small body): no timer, no wait
        whole = content.read_nowait()
        if len(whole) > MAX_BODY:
            raise errors.too_large(MAX_BODY)
        return whole
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            while True:
                received = await request.content.read(1 << 16)  # read(n) returns what has arrived, not n bytes
                if not received:
                    if inflate is not None and not inflate.eof:
                        raise zlib.error("the compressed body ends early")
                    return b"".join(chunks)
                chunk = inflate.decompress(received, MAX_BODY + 1 - size) if inflate is not None else received
                size += len(chunk)
                if size > MAX_BODY:
                    raise errors.too_large(MAX_BODY)
                chunks.append(chunk)
    except TimeoutError:
        raise errors.StatusError(408, "Timeout", f"the request body did not arrive within {BODY_TIMEOUT:.0f} s") from None
    except zlib.error as exc:
        request[BODY_BROKEN] = True
        raise errors.bad_request(f"the body is not valid {encoding}: {exc}") from None


async def decode_body(request: web.Request) -> Any:
    """The request body decoded (see `decode`); a large body is parsed off the event loop, so that the
    other requests, DNS answers and proxied connections are not kept waiting meanwhile."""
    body = await read_body(request)
    content_type = media_type(request)
    if len(body) > OFF_LOOP_BYTES:
        return await off_loop(decode, body, content_type)
    return decode(body, content_type)


async def off_loop(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on a worker thread with the cyclic collector paused (see `collector_paused`): for what
    a large body costs (its parse, its validation), so that the event loop goes on answering meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, _collector_paused_call, work, args)


def _collector_paused_call(work: Callable[..., T], args: tuple[Any, ...]) -> T:
    with collector_paused():
        return work(*args)


_paused = 0  # parses under way that paused the cyclic collector
_paused_lock = threading.Lock()
_resume = False  # whether the collector was running when the first of them paused it


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused meanwhile (process-wide; the last one out resumes it). A parse
    builds a million short-lived objects (a 3 MB YAML map of 200,000 entries): the collector would walk
    them all, several times, each time holding the GIL, so the event loop (DNS answers, every other request)
    would stop for 100-200 ms while a thread parses. A parse makes no reference cycles (a recursive YAML
    alias is refused), so reference counting frees everything without it; what validation does with it
    (`off_loop`: pydantic, the schema checks) may leave a few, which the collector takes once resumed."""
    global _paused, _resume
    with _paused_lock:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


def decode(body: bytes, content_type: str) -> Any:
    """A request body as JSON-shaped data, from JSON, YAML or the Kubernetes protobuf envelope."""
    if not body.strip():
        raise errors.bad_request("the request body is empty: send the object as JSON or YAML")
    if content_type == PROTOBUF:
        try:
            return decode_k8s_protobuf(body)
        except ProtobufError as exc:
            raise errors.bad_request(f"could not decode the protobuf body: {exc}") from exc
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if content_type in YAML_TYPES or content_type.endswith("yaml"):
            try:
                value = yaml.load(body, Loader=ManifestLoader)  # noqa: S506 - a SafeLoader
            except yaml.YAMLError as yerr:
                raise errors.bad_request(f"the body is neither valid JSON nor valid YAML: {yerr}") from yerr
            except RecursionError:
                raise errors.bad_request(f"the body is nested more than {limits.MAX_DEPTH} levels deep") from None
            limits.check_expansion(value)  # aliases: what the body amounts to, before anything walks it
            return value
        raise errors.bad_request(f"the body is not valid JSON: {exc}") from exc


def flag(request: web.Request, name: str) -> bool:
    """Query booleans the way Go's ParseBool reads them (the Python client sends `watch=True`)."""
    if not request.query_string:  # the usual write: no query to parse
        return False
    return request.query.get(name, "").strip() in ("1", "t", "T", "true", "TRUE", "True")


def int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{raw}" is not a number') from None
