"""The one generic handler behind every resource URL: routing, verbs, lists, watches and patches.

`/api/v1/...` and `/apis/<group>/<version>/...` are parsed once into a `RequestInfo` (api/requestinfo.py:
kind, namespace, name, subresource, verb); the registry does the work; this module decodes and encodes. What
differs per kind is in the registry's strategies and api/tables.py, never in copied handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from api import tables
from api.discovery import table_content_type, table_version
from api.http import (
    JSON,
    OFF_LOOP_BYTES,
    decode,
    decode_body,
    flag,
    int_param,
    json_response,
    media_type,
    off_loop,
    read_body,
)
from api.requestinfo import Target, request_info, verbs_of
from api.watch import WatchStream
from emulator import errors
from emulator.kinds import BINDINGS, NAMESPACES, ResourceType
from emulator.kinds.printing import Printer
from emulator.registry.registry import (
    FIELD_VALIDATION_MODES,
    PATCH_TYPES,
    PROPAGATION_POLICIES,
    Decoded,
    ObjectFilter,
    Registry,
    WriteOptions,
)

log = logging.getLogger(__name__)
OFF_LOOP_OBJECTS = 1000  # a list that decodes more objects than this does it on the worker thread






def _grace_period(options: dict[str, Any], request: web.Request) -> int | None:
    """DeleteOptions.gracePeriodSeconds, from the body or the query (None: the object's own)."""
    value: Any = options.get("gracePeriodSeconds", request.query.get("gracePeriodSeconds"))
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f"gracePeriodSeconds must be a number of seconds, not {value!r}") from None


def _propagation(options: dict[str, Any], request: web.Request) -> str | None:
    """DeleteOptions.propagationPolicy (or the deprecated orphanDependents), from the body or the query;
    None when the client asked for neither (the kind's default: Background)."""
    policy = options.get("propagationPolicy", request.query.get("propagationPolicy"))
    orphan: Any = options.get("orphanDependents", request.query.get("orphanDependents"))
    if isinstance(orphan, str):
        orphan = {"true": True, "false": False}.get(orphan.lower(), orphan)
    if policy is not None and orphan is not None:
        raise errors.StatusError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Invalid value: "{policy}": orphanDependents and deletionPropagation cannot be both set')
    if orphan is not None:
        if not isinstance(orphan, bool):
            raise errors.bad_request(f"orphanDependents must be true or false, not {orphan!r}")
        return "Orphan" if orphan else "Background"
    if policy is not None and policy not in PROPAGATION_POLICIES:
        raise errors.StatusError(
            422, "Invalid",
            f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
        )
    return policy


def _list_body(
    rt: ResourceType, kept: Iterable[bytes], rv: str, version: str | None, include: str, printer: Printer | None,
) -> bytes:
    """A list (or, for `kubectl get`, a Table) of the stored JSON `kept`, as JSON."""
    if version:
        return orjson.dumps(tables.table(rt, [orjson.loads(r) for r in kept], rv, include, version=version, printer=printer))
    # splice the stored JSON into the list without decoding it: lists of 10,000 pods stay fast
    head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": rv}})
    return head[:-1] + b',"items":[' + b",".join(kept) + b"]}"


def include_object(request: web.Request) -> str:
    """What a Table row carries of its object (`includeObject`); Metadata, as kubectl expects, by default."""
    value = request.query.get("includeObject") or "Metadata"
    if value not in tables.INCLUDE_OBJECT:
        raise errors.bad_request(f'includeObject must be one of None, Metadata or Object, not "{value}"')
    return value


class ResourceHandler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def handle(self, request: web.Request) -> web.StreamResponse:
        before = self.registry.resource_version
        try:
            return await self._dispatch(request)
        finally:
            if request.method != "GET" and self.registry.resource_version != before:
                # answer (even with an error, after a partial deletecollection) only once the writes
                # are on disk and everything reacting to them has run: see emulator/store/store.py
                await self.registry.settled_since(before)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        info = request_info(request)
        if info.target is None:
            raise info.error or errors.no_such_path()
        target, verb, method = info.target, info.verb, request.method
        # A kind (or subresource) serves only the verbs the table grants it: a create-only kind such as
        # TokenReview must not be listed or watched, serviceaccounts/token must not read the account.
        if verb is not None and verb not in verbs_of(target) and not (target.rt is NAMESPACES and verb == "deletecollection"):
            raise errors.method_not_allowed(
                f"the server does not allow this method on the requested resource ({method} {request.path}): "
                f"{target.rt.key}{'/' + target.subresource if target.subresource else ''} supports {', '.join(verbs_of(target))}"
            )
        if target.name is None:
            if method == "GET":
                return await (self.watch(request, target) if flag(request, "watch") else self.list(request, target))
            if method == "POST":
                return await self.create(request, target)
            if method == "DELETE":
                return await self.delete_collection(request, target)
        else:
            if method == "GET":
                return self.get(request, target)
            if method == "PUT":
                return await self.update(request, target)
            if method == "PATCH":
                return await self.patch(request, target)
            if method == "POST" and target.subresource == "binding":
                return await self.bind(request, target)
            if method == "DELETE" and target.subresource is None:
                return await self.delete(request, target)
        raise errors.method_not_allowed(f"the server does not allow this method on the requested resource ({method} {request.path})")

    # -- reads ---------------------------------------------------------------------------------------

    def _render(self, request: web.Request, rt: ResourceType, obj: dict[str, Any]) -> web.Response:
        version = table_version(request.headers.get("Accept"))
        if version:
            table = tables.table(rt, [obj], obj["metadata"].get("resourceVersion", ""), include_object(request), version=version)
            return json_response(table, content_type=table_content_type(version))
        return json_response(obj)

    def get(self, request: web.Request, target: Target) -> web.Response:
        if target.subresource == "scale":
            return json_response(self.registry.get_scale(target.rt, target.namespace or "", target.name or ""))
        obj = self.registry.get(target.rt, target.namespace or "", target.name or "")
        return self._render(request, target.rt, obj)

    def _filter(self, request: web.Request, rt: ResourceType) -> ObjectFilter | None:
        return self.registry.make_filter(rt, request.query.get("labelSelector"), request.query.get("fieldSelector"))

    async def list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        keep = self._filter(request, rt)
        rv = str(self.registry.resource_version)
        raws = self.registry.snapshot_raw(rt, target.namespace if rt.namespaced else "")
        version = table_version(request.headers.get("Accept"))
        include = include_object(request) if version else "Metadata"
        # what the kind is served by (its strategy, its columns) is looked up here, on the loop: a body
        # made on the worker thread does not see the CRD controller change the kinds meanwhile
        kept = self.registry.filter_raw(rt, raws, keep)
        printer = tables.printer_for(rt) if version else None
        if (keep is not None or version) and len(raws) > OFF_LOOP_OBJECTS:
            # each object decoded (to be filtered, or to make a row): 5,000 pods are ~0.1 s of it
            body = await off_loop(_list_body, rt, kept, rv, version, include, printer)
        else:
            body = _list_body(rt, kept, rv, version, include, printer)
        return json_response(body, content_type=table_content_type(version) if version else JSON)

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        render = None
        table_v = table_version(request.headers.get("Accept"))
        if table_v:  # kubectl get -w: each event carries a one-row Table
            include = include_object(request)

            def render(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
                return tables.table(rt, [obj], obj["metadata"].get("resourceVersion", ""), include, version=table_v)

        stream = WatchStream(
            self.registry.watch(rt, target.namespace if rt.namespaced else None, self._filter(request, rt)), render,
            flag(request, "allowWatchBookmarks"), int_param(request, "timeoutSeconds"),
        )
        return await stream.serve(request, request.query.get("resourceVersion", ""))

    # -- writes --------------------------------------------------------------------------------------

    def _options(self, request: web.Request) -> WriteOptions:
        if not request.query_string:
            return WriteOptions()
        mode = request.query.get("fieldValidation") or "Warn"
        if mode not in FIELD_VALIDATION_MODES:
            raise errors.bad_request(f'fieldValidation must be one of Strict, Warn or Ignore, not "{mode}"')
        dry_run = request.query.get("dryRun")
        if dry_run and dry_run != "All":
            raise errors.bad_request(f'dryRun must be "All", not "{dry_run}"')
        return WriteOptions(dry_run=bool(dry_run), field_validation=mode, field_manager=request.query.get("fieldManager"))

    async def create(self, request: web.Request, target: Target) -> web.Response:
        if target.rt is BINDINGS:  # never stored: the pod it names is bound
            return await self.bind(request, target)
        options = self._options(request)
        body = await self._object(request, target.rt, options)
        result = self.registry.create(target.rt, target.namespace or "", body, options)
        return json_response(result.raw or result.obj, status=201, warnings=result.warnings)

    async def _object(self, request: web.Request, rt: ResourceType, options: WriteOptions) -> Any:
        """The object a create or update sends. A large body is parsed and validated (`Registry.decoded`)
        in one go on a worker thread: 170,000 entries of a free-form map cost ~0.5 s of pydantic and
        schema checks, which the event loop (DNS answers, every other request) must not wait through."""
        body = await read_body(request)
        if len(body) <= OFF_LOOP_BYTES:
            return decode(body, media_type(request))
        return await off_loop(self._decode_large, rt, body, media_type(request), options)

    def _decode_large(self, rt: ResourceType, body: bytes, content_type: str, options: WriteOptions) -> Decoded:
        return self.registry.decoded(rt, decode(body, content_type), options)

    async def bind(self, request: web.Request, target: Target) -> web.Response:
        """pods/{name}/binding, or a Binding posted to bindings (the pod named by its metadata): bind the pod
        to the target node (a custom scheduler's write)."""
        body = await decode_body(request)
        ref = body.get("target") if isinstance(body, dict) else None
        node = ref.get("name") if isinstance(ref, dict) else None
        meta = body.get("metadata") if isinstance(body, dict) else None
        pod = target.name or (meta.get("name") if isinstance(meta, dict) else None) or ""
        if not pod:
            raise errors.invalid_object("Binding", "", "", [errors.required("metadata.name")])
        if not isinstance(node, str) or not node:
            raise errors.invalid_object("Binding", "", pod, [errors.required("target.name")])
        self.registry.bind(target.namespace or "", pod, node)
        return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, status=201)

    async def update(self, request: web.Request, target: Target) -> web.Response:
        options = self._options(request)
        if target.subresource == "scale":  # a Scale, not the kind's object
            body = await decode_body(request)
        else:
            body = await self._object(request, target.rt, options)
        result = self.registry.update(target.rt, target.namespace or "", target.name or "", body, options, target.subresource)
        return json_response(result.obj, warnings=result.warnings)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        content_type = media_type(request)
        body = await read_body(request)
        options = self._options(request)
        namespace, name, force = target.namespace or "", target.name or "", flag(request, "force")
        large = len(body) > OFF_LOOP_BYTES
        patch = await off_loop(decode, body, content_type) if large else decode(body, content_type)
        if (large or self.registry.stored_size(target.rt, namespace, name) > OFF_LOOP_BYTES) and (
                content_type in PATCH_TYPES and target.subresource != "scale"):
            # a large patch, or a patch of a large object, is applied and its result validated on the worker thread
            result = await self.registry.patch_offloaded(off_loop, target.rt, namespace, name, content_type, patch, options, target.subresource, force)
        else:
            result = self.registry.patch(target.rt, namespace, name, content_type, patch, options, target.subresource, force)
        return json_response(result.obj, status=201 if result.created else 200, warnings=result.warnings)

    async def _delete_options(self, request: web.Request) -> tuple[dict[str, Any] | None, bool, str | None, int | None]:
        """DeleteOptions from the body and the query: (preconditions, dry run, propagation policy, grace period)."""
        body = await read_body(request)
        options: Any = decode(body, media_type(request)) if body.strip() else {}
        if not isinstance(options, dict):
            raise errors.bad_request("the body of a DELETE must be DeleteOptions, a JSON object")
        preconditions = options.get("preconditions")
        if preconditions is not None and not isinstance(preconditions, dict):
            raise errors.bad_request('preconditions must be an object such as {"uid": "...", "resourceVersion": "..."}')
        dry_run = options.get("dryRun") or ([request.query["dryRun"]] if "dryRun" in request.query else [])
        if dry_run not in ([], ["All"]):
            raise errors.bad_request(f'dryRun must be "All", not {dry_run!r}')
        return preconditions, dry_run == ["All"], _propagation(options, request), _grace_period(options, request)

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        preconditions, dry_run, propagation, grace = await self._delete_options(request)
        obj = self.registry.delete(target.rt, target.namespace or "", target.name or "", preconditions, dry_run, propagation, grace)
        return json_response(obj)

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        if rt is NAMESPACES:
            raise errors.method_not_allowed("namespaces cannot be deleted as a collection; delete them one by one")
        _, dry_run, propagation, grace = await self._delete_options(request)
        deleted = await self.registry.delete_collection_paced(rt, target.namespace, self._filter(request, rt), dry_run, propagation, grace)
        return json_response({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(self.registry.resource_version)}, "items": deleted})
