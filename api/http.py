"""HTTP plumbing shared by the handlers: JSON responses, Status errors, request bodies and query flags."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from aiohttp import web

from api.protobuf import ProtobufError, decode_k8s_protobuf
from emulator import errors

MAX_BODY = 3 * 1024 * 1024  # the API server's limit for a request body
JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml")


class ManifestLoader(yaml.SafeLoader):
    """YAML as Kubernetes reads it: `2024-01-01` stays a string (in an annotation, say), not a date."""


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def json_response(body: Any, status: int = 200, content_type: str = JSON, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(body=body if isinstance(body, bytes) else orjson.dumps(body), status=status)
    # set by hand: aiohttp would add "; charset=utf-8", which breaks kubectl's discovery parsing
    response.headers["Content-Type"] = content_type
    for warning in warnings or ():
        response.headers.add("Warning", f'299 - "{_quote(warning)}"')
    return response


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def status_response(error: errors.StatusError) -> web.Response:
    return json_response(error.status(), status=error.code)


def media_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or JSON).split(";", 1)[0].strip().lower()


async def read_body(request: web.Request) -> bytes:
    """The whole request body, refused with 413 past the API server's 3 MiB limit."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.too_large(MAX_BODY)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(1 << 16)  # read(n) returns what has arrived, not n bytes
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.too_large(MAX_BODY)
        chunks.append(chunk)


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
                return yaml.load(body, Loader=ManifestLoader)  # noqa: S506 - a SafeLoader
            except yaml.YAMLError as yerr:
                raise errors.bad_request(f"the body is neither valid JSON nor valid YAML: {yerr}") from yerr
        raise errors.bad_request(f"the body is not valid JSON: {exc}") from exc


def flag(request: web.Request, name: str) -> bool:
    """Query booleans the way Go's ParseBool reads them (the Python client sends `watch=True`)."""
    return request.query.get(name, "").strip() in ("1", "t", "T", "true", "TRUE", "True")


def int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{raw}" is not a number') from None
