"""The generic write path shared by every kind: decode → prepare → validate → allocate → store.

The API layer turns HTTP into calls on `Registry`; controllers call it too (`ensure`, `delete`), and
are validated like any other writer. Patches and server-side apply are registry operations: the
merge semantics are pure functions (patch.py, apply.py) over the kind's list rules. A failed call
changes nothing: validation happens before allocation, and allocations are rolled back if the store
refuses the write. Per-kind behaviour lives in each kind's strategy (emulator/kinds/).
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaValidator

from emulator import envvars, errors, limits, podenv, schemas, validation
from emulator.kinds import KINDS, NAMESPACES, NODES, PODS, SERVICES, ResourceType, kind_of
from emulator.kinds.protobuf_layout import UNKNOWN_FIELD_PREFIX
from emulator.kinds.service import ServiceView
from emulator.kinds.values import path_segment_errors
from emulator.labels import (
    Selector,
    SelectorError,
    parse_field_selector,
    parse_selector,
    selector_from_label_selector,
    selector_from_map,
)
from emulator.models.base import field_errors, mismatch_error, open_fields, unknown_fields
from emulator.registry import managedfields
from emulator.registry.ipam import AddressPlan
from emulator.registry.patch import (
    ListRules,
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    server_side_apply,
)
from emulator.registry.strategy import Strategy
from emulator.registry.watch import ObjectFilter, Watch
from emulator.store.events import Event
from emulator.store.store import Store
from emulator.timestamps import now_rfc3339, rfc3339

FIELD_VALIDATION_MODES = ("Strict", "Warn", "Ignore")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
DELETE_BATCH = 200  # objects a deletecollection deletes per turn of the event loop
PATCH_ATTEMPTS = 4  # a large patch is applied off the loop up to 3 times while its object keeps changing, then on it
# How `patch_offloaded` runs its costly part elsewhere: `await offload(work, *args)` returns `work(*args)`
# (the API passes api/http.py `off_loop`: a worker thread, the cyclic collector paused).
Offload = Callable[..., Awaitable[Any]]
_COMMON_FIELD_LABELS = {"metadata.name": ("metadata.name", ""), "metadata.namespace": ("metadata.namespace", "")}
# DeleteOptions.propagationPolicy and the finalizers the garbage collector acts on (emulator/controllers/garbagecollector.py)
PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
_NAME_RULES = {
    "subdomain": validation.dns1123_subdomain_errors,
    "label": validation.dns1123_label_errors,
    "dns1035": validation.dns1035_label_errors,
    "path segment": path_segment_errors,  # RBAC roles and bindings (`system:basic-user`)
}


_UID_BATCH = 16 * 256  # random bytes read at once: one getrandom() per 256 uids, not one each
_uid_random = b""
_uid_next = _UID_BATCH
_uid_lock = threading.Lock()


def new_uid() -> str:
    """A random (version 4) UUID, as uuid.uuid4() makes it from os.urandom, in under half the time:
    the random bytes are read in batches and formatted by hand."""
    global _uid_random, _uid_next
    with _uid_lock:  # (writes come from the event loop; a tool's thread must not share a slice either)
        if _uid_next >= _UID_BATCH:
            _uid_random, _uid_next = os.urandom(_UID_BATCH), 0
        b = bytearray(_uid_random[_uid_next:_uid_next + 16])
        _uid_next += 16
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# Per model class: its validator with unknown fields refused rather than kept (None: none could be made).
# A body it accepts validates exactly as with the model's own, and has no unknown field to look for; one it
# refuses goes the model's own way, which says what was wrong, or which fields are unknown. Made at a kind's
# second decode, not its first: the start writes one object of a dozen kinds (~4 ms of validators).
_EXACT_VALIDATORS: dict[type[BaseModel], SchemaValidator | None] = {}
_DECODED_ONCE: set[type[BaseModel]] = set()


def exact_validator(model_class: type[BaseModel]) -> SchemaValidator | None:
    """`model_class`'s validator, built from its core schema with every model that allows extra fields
    (ApiModel's `extra="allow"`) forbidding them instead; everything else (strictness, defaults, the
    decode-error wrapper) stays as it is."""

    def forbid(node: Any) -> None:
        if isinstance(node, dict):
            config = node.get("config")
            if node.get("type") == "model" and isinstance(config, dict) and config.get("extra_fields_behavior") == "allow":
                node["config"] = {**config, "extra_fields_behavior": "forbid"}
            for value in node.values():
                forbid(value)
        elif isinstance(node, list):
            for value in node:
                forbid(value)

    try:
        schema = copy.deepcopy(model_class.__pydantic_core_schema__)
        forbid(schema)
        return SchemaValidator(schema)
    except Exception:  # a schema this cannot copy: the model's own validator serves
        return None


def marked_for_deletion(obj: dict[str, Any]) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def gc_finalizers(finalizers: list[str], propagation: str) -> list[str]:
    """The finalizers an object keeps when deleted with `propagation` (the API server's
    deletionFinalizersForGarbageCollection): Orphan adds `orphan`, Foreground `foregroundDeletion`,
    Background neither; each policy drops the other policies' finalizer."""
    kept = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if propagation == "Orphan":
        kept.append(ORPHAN_FINALIZER)
    elif propagation == "Foreground":
        kept.append(FOREGROUND_FINALIZER)
    return kept


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale of an object with a `scale` subresource: spec.replicas, status.replicas and
    the selector as a query string (a LabelSelector for apps/v1 kinds, a plain map for ReplicationControllers)."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    try:
        if isinstance(selector, dict) and selector and all(isinstance(v, dict | list) for v in selector.values()):
            text = str(selector_from_label_selector(selector))
        else:
            text = str(selector_from_map(selector))
    except SelectorError:
        text = ""
    scale_status: dict[str, Any] = {"replicas": int(status.get("replicas") or 0)}
    if text:
        scale_status["selector"] = text
    replicas = int(spec.get("replicas") or 0)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta},
        "spec": {"replicas": replicas} if replicas else {},
        "status": scale_status,
    }


@dataclass
class Cluster:
    """What strategies may consult besides the object: the address plan, the store, settings."""

    store: Store
    plan: AddressPlan
    node_address: str = "127.0.0.1"
    api_address: str = "127.0.0.1"
    api_port: int = 8080
    # With the kubelet on (emulator/kubelet/): why it would not run a pod, None when it runs it. None
    # without a kubelet: pods are records. Strategies ask it without importing the kubelet.
    unrunnable: Callable[[dict[str, Any]], str | None] | None = None
    # The CA (PEM) of the API's certificate when the API speaks HTTPS (it requires tokens): then new pods get
    # the service account's credentials mounted, as in a cluster (kinds/serviceaccount.py mount_api_access)
    # and every namespace has the kube-root-ca.crt ConfigMap (controllers/namespaces.py). None: plain HTTP.
    root_ca: str | None = None


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    field_manager: str | None = None


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    changed: bool = True
    warnings: list[str] = field(default_factory=list)
    raw: bytes | None = None  # `obj` as JSON when the store already encoded it so (the answer to a create)


@dataclass(frozen=True)
class Decoded:
    """A client's object as `Registry.decode` made it (validated, normalised, with its warnings), for a
    create, update or patch that takes it in place of the body. `decode` reads nothing but the kind's
    strategy and schemas: the HTTP layer runs it on a worker thread for a large body, so that the event
    loop is not held meanwhile. Should the kind's strategy be another by the time the write is made (its
    CustomResourceDefinition changed), `body` is decoded again, by the new one."""

    obj: dict[str, Any]
    warnings: list[str]
    body: Any  # what was decoded
    strategy: Strategy  # by what




class Registry:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.store = cluster.store
        # one strategy per stored kind (TokenReview has none: it is never stored)
        self.strategies: dict[str, Strategy] = {
            k.resource.key: k.strategy(cluster) for k in KINDS if k.strategy is not None
        }
        self._registered: dict[ResourceType, Strategy] = {}

    def strategy(self, rt: ResourceType) -> Strategy:
        found = self.strategies.get(rt.key)
        if found is not None and (found.resource is rt or found.resource == rt):
            return found
        # a kind registered while running (a custom resource version): one strategy per version served
        kind = kind_of(rt)
        served = self._registered.get(rt)
        if served is None or type(served) is not kind.strategy:
            if kind.strategy is None:
                raise KeyError(rt.key)
            served = self._registered[rt] = kind.strategy(self.cluster)
        return served

    def _served(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """An object as the version asked for: a kind served in several versions stores one apiVersion."""
        strategy = self.strategy(rt)
        if strategy.storage_api_version is None or obj.get("apiVersion") == rt.api_version:
            return obj
        return strategy.served(obj)

    # -- start ---------------------------------------------------------------------------------------

    def claim_stored(self) -> None:
        """Mark every address/port held by a stored object as taken (allocations survive restarts)."""
        for strategy in self.strategies.values():
            if type(strategy).claim is Strategy.claim and type(strategy).claim_raw is Strategy.claim_raw:
                continue  # holds nothing: no need to read its objects
            for raw in self.store.raws(strategy.resource.key):
                strategy.claim_raw(raw)

    # -- reads ---------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The resourceVersion of the last write (what a list is consistent with)."""
        return self.store.rv

    def settled_since(self, rv: int) -> Coroutine[Any, Any, None]:
        """Wait until every write after `rv` is on disk and every reactor has seen it (the store's own
        coroutine: no frame of ours for each resumption to pass through)."""
        return self.store.settled_since(rv)

    def watch(self, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None) -> Watch:
        if self.strategy(rt).storage_api_version in (None, rt.api_version):
            return Watch(self.store, rt, namespace, keep)
        return _VersionWatch(self.store, rt, namespace, keep, self.strategy(rt).served)

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace, name)
        if obj is None:
            raise errors.not_found(rt.key, name)
        return self._served(rt, obj)

    def get_scale(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """GET .../<name>/scale: the object's autoscaling/v1 Scale."""
        obj = self.get(rt, namespace, name)
        return self.strategy(rt).scale(obj) or scale_of(obj)

    def pod_environment(self, namespace: str, name: str, container: str | None) -> tuple[str, dict[str, str]]:
        """The variables the kubelet would give a container of the pod (by default the one kubectl
        picks): (the container's name, the variables in the order they are set)."""
        pod = self.get(PODS, namespace, name)
        container = container or envvars.default_container(pod)
        if container is None:
            raise errors.StatusError(404, "NotFound", f'pod "{name}" has no containers')
        # Sorted by name so that the output is stable; the kubelet's own order is random.
        services = sorted(
            (ServiceView.of(s) for s in self.store.objects(SERVICES.key, namespace)), key=lambda s: s.name
        )
        kubernetes = self.store.get(SERVICES.key, "default", "kubernetes")
        node = self.store.get(NODES.key, "", (pod.get("spec") or {}).get("nodeName") or "") or {}
        try:
            env, _ = podenv.container_environment(
                pod, container, services, ServiceView.of(kubernetes) if kubernetes else None,
                lambda resource, ref: self.store.get(resource, namespace, ref),
                (node.get("status") or {}).get("allocatable") or {},
            )
        except KeyError:
            raise errors.StatusError(
                404, "NotFound", f'container "{container}" not found in pod "{name}"', {"kind": "pods", "name": name}
            ) from None
        except podenv.ConfigError as exc:
            # what the kubelet would leave the container waiting for (CreateContainerConfigError)
            raise errors.StatusError(
                404, "NotFound", f'container "{container}" of pod "{name}" cannot start ({podenv.CONFIG_ERROR}): {exc.message}',
                {"kind": exc.resource, "name": exc.name},
            ) from None
        return container, env

    def make_filter(self, rt: ResourceType, label_selector: str | None, field_selector: str | None) -> ObjectFilter | None:
        """Parse list/watch selectors once; None when nothing is filtered. Bad syntax or a field the
        kind cannot be selected by → 400, as the API server answers."""
        checks: list[ObjectFilter] = []
        try:
            if label_selector:
                selector: Selector = parse_selector(label_selector)
                if not selector.is_everything:
                    checks.append(lambda o: selector.matches(o.get("metadata", {}).get("labels")))
            if field_selector:
                labels = {**_COMMON_FIELD_LABELS, **(self.strategies[rt.key].field_labels if rt.key in self.strategies else {})}
                for field, op, value in parse_field_selector(field_selector):
                    if field not in labels:
                        supported = ", ".join(sorted(labels))
                        raise errors.bad_request(f'field label not supported: {field} (supported for {rt.key}: {supported})')
                    path, absent = labels[field]
                    checks.append(_field_check(path.split("."), op == "=", value, absent))
        except SelectorError as exc:
            raise errors.bad_request(f"unable to parse selector: {exc}") from exc
        if not checks:
            return None
        return lambda o: all(check(o) for check in checks)

    def list_raw(self, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None) -> Iterator[bytes]:
        """Stored JSON of the matching objects, undecoded when nothing filters them (fast lists)."""
        return self.filter_raw(rt, self.store.raws(rt.key, namespace), keep)

    def snapshot_raw(self, rt: ResourceType, namespace: str | None) -> list[bytes]:
        """The stored JSON of every object of the kind (in one namespace, or all), as it is now: a list
        that `filter_raw` may go through on a worker thread while the store changes."""
        return list(self.store.raws(rt.key, namespace))

    def filter_raw(self, rt: ResourceType, raws: Iterable[bytes], keep: ObjectFilter | None) -> Iterator[bytes]:
        """Those of `raws` that `keep` keeps, in the version served (decoded only to be filtered or converted).
        The kind's strategy is looked up now, not as the result is gone through (perhaps on a worker
        thread, while the CRD controller changes the kinds)."""
        strategy = self.strategy(rt)
        served = strategy.served if strategy.storage_api_version not in (None, rt.api_version) else None
        return _kept(raws, keep, served, rt.api_version)

    # -- writes --------------------------------------------------------------------------------------

    def decoded(self, rt: ResourceType, body: Any, options: WriteOptions) -> Decoded:
        """`decode` as one value, to hand to `create`, `update` or `replace_object` later (safe on a worker
        thread: it reads only the kinds' strategies and schemas, and stores nothing)."""
        strategy = self.strategy(rt)
        return Decoded(*self.decode(rt, body, options), body, strategy)

    def decode(self, rt: ResourceType, body: Any, options: WriteOptions) -> tuple[dict[str, Any], list[str]]:
        """Validate a client's object against the kind's schema; returns the normalised dict and warnings.
        `body` already `Decoded` (for this kind, with these options) is taken as it is, unless the kind's
        strategy changed since."""
        if isinstance(body, Decoded):
            if body.strategy is self.strategy(rt):
                return body.obj, list(body.warnings)
            body = body.body
        if not isinstance(body, dict):
            raise errors.bad_request(f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}: expected a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if (api_version and api_version != rt.api_version) or (kind and kind != rt.kind):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) and kind ({kind}) do not match the resource "
                f"{rt.key} ({rt.api_version}, {rt.kind})"
            )
        strategy = self.strategy(rt)
        model_class = strategy.model
        model: BaseModel | None = None
        unknown: list[str] = []
        exact = _EXACT_VALIDATORS.get(model_class)
        if exact is not None:
            try:
                model = exact.validate_python(body)  # no unknown field anywhere: nothing to walk for them
            except Exception:  # an unknown field, or any fault: the full path below says which
                model = None
        if model is None:
            try:
                model = model_class.model_validate(body)
            except ValidationError as exc:
                name = body.get("metadata", {}).get("name") if isinstance(body.get("metadata"), dict) else None
                raise errors.invalid_object(rt.kind, rt.group, str(name or ""), field_errors(exc)) from exc
            unknown = unknown_fields(model)
            if model_class not in _EXACT_VALIDATORS and len(_EXACT_VALIDATORS) < 512:
                if model_class in _DECODED_ONCE:
                    _EXACT_VALIDATORS[model_class] = exact_validator(model_class)
                else:
                    _DECODED_ONCE.add(model_class)
        # (a client's apiVersion/kind, when sent, were checked above to be these)
        obj = {"apiVersion": rt.api_version, "kind": rt.kind, **model.model_dump(exclude_none=True)}
        open_parts = open_fields(model_class)
        if open_parts:  # what the model keeps as it comes, checked against 1.32's schema as Go's decoder would
            more, mismatch = schemas.check_open_fields(rt.api_version, rt.kind, obj, open_parts)  # (drops the unknown)
            if mismatch is not None:
                raise mismatch_error(rt.kind, rt.api_version, mismatch)
            unknown += more
        unknown += strategy.decode_fields(body, obj)
        unknown = list(dict.fromkeys(unknown))  # (found by the model, the schema or the strategy: once each)
        warnings: list[str] = []
        if unknown and options.field_validation != "Ignore":
            # a protobuf field number this version does not know: named and dropped, never refused (protobuf_layout.py)
            newer = [p for p in unknown if p.rpartition(".")[2].startswith(UNKNOWN_FIELD_PREFIX)]
            unknown = [p for p in unknown if p not in newer]
            warnings = [f'unknown field "{p}"' for p in newer]
        if unknown and options.field_validation == "Strict":
            listed = ", ".join(f'unknown field "{p}"' for p in unknown)
            raise errors.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: strict decoding error: {listed}')
        if unknown and options.field_validation == "Warn":
            warnings += [f'unknown field "{p}"' for p in unknown]
        if strategy.storage_api_version not in (None, rt.api_version):
            obj = strategy.to_storage(obj)  # the rest of the write works on the stored form
        name = (obj.get("metadata") or {}).get("name") or ""
        limits.encoded(obj, f'{rt.kind} "{name}"')  # what the store could not keep is refused now
        return obj, warnings

    def create(self, rt: ResourceType, namespace: str, body: Any, options: WriteOptions | None = None) -> WriteResult:
        options = options or WriteOptions()
        obj, warnings = self.decode(rt, body, options)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = self._generate_name(rt, namespace, meta["generateName"])
            else:
                raise errors.invalid_object(rt.kind, rt.group, "", [errors.FieldError("metadata.name", "FieldValueRequired", "name or generateName is required")])
        name = meta["name"]
        for server_set in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(server_set, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        if rt.namespaced:
            self._check_namespace_open(rt, namespace, name)
        strategy = self.strategy(rt)
        strategy.prepare_create(obj)
        self._validate(rt, strategy, obj, None)
        warnings += strategy.warnings(obj)
        if self.store.get_raw(rt.key, namespace, name) is not None:
            raise errors.already_exists(rt.key, name)
        stored = self._commit(strategy, obj, None, options.dry_run, lambda: self.store.create(rt.key, namespace, name, obj))
        served = self._served(rt, stored)
        raw = None
        if served is stored and not options.dry_run:
            found = self.store.get_raw(rt.key, namespace, name)  # what the write just encoded: not encoded again
            if found is not None and str(found[0]) == stored["metadata"].get("resourceVersion"):
                raw = found[1]  # (else a listener, run at once without an event loop, changed it since)
        return WriteResult(served, created=True, warnings=warnings, raw=raw)

    def update(
        self, rt: ResourceType, namespace: str, name: str, body: Any,
        options: WriteOptions | None = None, subresource: str | None = None,
    ) -> WriteResult:
        """PUT semantics: replace the object; a resourceVersion in the body is a precondition."""
        options = options or WriteOptions()
        if subresource == "scale":
            return self._write_scale(rt, self.get(rt, namespace, name), body, options)
        obj, warnings = self.decode(rt, body, options)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f'the name of the object ({meta["name"]}) does not match the name on the URL ({name})')
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        old = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if old is None:
            raise errors.not_found(rt.key, name)
        if meta.get("uid") and meta["uid"] != old["metadata"].get("uid"):
            # another object of the same name (deleted and created again): never overwrite it
            raise errors.conflict(rt.key, name, f'Precondition failed: UID in precondition: {meta["uid"]}, UID in object meta: {old["metadata"].get("uid")}')
        return self._replace(rt, old, obj, _parse_rv(meta.get("resourceVersion")), options, subresource, warnings)

    def replace_object(
        self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any] | Decoded,
        options: WriteOptions | None = None, subresource: str | None = None,
    ) -> WriteResult:
        """Write `new` (e.g. a patched `old`, maybe already `Decoded`) after schema validation, conditional
        on `old`'s version; a resourceVersion that `new` carries (a patch that set one) is a precondition
        as well."""
        options = options or WriteOptions()
        obj, warnings = self.decode(rt, new, options)
        strategy = self.strategy(rt)
        if strategy.storage_api_version not in (None, old.get("apiVersion")):
            old = strategy.to_storage(old)  # (a patch's base: the object as this version served it)
        meta = obj.setdefault("metadata", {})
        old_meta = old["metadata"]
        if meta.get("name") and meta["name"] != old_meta["name"]:
            raise errors.bad_request(f'the name of the object ({meta["name"]}) does not match the name on the URL ({old_meta["name"]}); names cannot be changed')
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            raise errors.conflict(rt.key, old_meta["name"], f'Precondition failed: UID in precondition: {meta["uid"]}, UID in object meta: {old_meta.get("uid")}')
        meta["name"] = old_meta["name"]
        expected = _parse_rv(meta.get("resourceVersion")) or int(old["metadata"]["resourceVersion"])
        return self._replace(rt, old, obj, expected, options, subresource, warnings)

    def _replace(
        self, rt: ResourceType, old: dict[str, Any], obj: dict[str, Any], expected_rv: int | None,
        options: WriteOptions, subresource: str | None, warnings: list[str],
    ) -> WriteResult:
        strategy = self.strategy(rt)
        old_meta = old["metadata"]
        namespace, name = old_meta.get("namespace", ""), old_meta["name"]
        if expected_rv is not None and expected_rv != int(old_meta["resourceVersion"]):
            raise errors.conflict(rt.key, name)
        obj = _carry_over(strategy, old, obj, subresource)
        strategy.prepare_update(obj, old)
        self._validate(rt, strategy, obj, old)
        if subresource is None:
            warnings = [*warnings, *strategy.warnings(obj)]
        obj["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if obj == old:
            return WriteResult(self._served(rt, old), changed=False, warnings=warnings)
        if _last_finalizer_removed(strategy, obj, old):
            # the pending deletion completes now
            gone = obj if options.dry_run else self._remove(rt, strategy, namespace, name, old)
            return WriteResult(gone, warnings=warnings)
        stored = self._commit(
            strategy, obj, old, options.dry_run, lambda: self.store.update(rt.key, namespace, name, obj, expected_rv)
        )
        return WriteResult(self._served(rt, stored), warnings=warnings)

    def _commit(
        self, strategy: Strategy, obj: dict[str, Any], old: dict[str, Any] | None, dry_run: bool,
        write: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """Take the addresses `obj` needs, then `write` it; what a refused (or dry) write took is given
        back, and on success what the old version held and the new one does not."""
        allocation = strategy.allocate(obj, old, dry_run)
        if dry_run:
            allocation.rollback()
            return obj
        try:
            stored = write()
        except BaseException:
            allocation.rollback()
            raise
        if old is not None:
            strategy.release(old, keep=stored)
        return stored

    def patch(
        self, rt: ResourceType, namespace: str, name: str, patch_type: str, patch: Any,
        options: WriteOptions | None = None, subresource: str | None = None, force: bool = False,
    ) -> WriteResult:
        """PATCH semantics: one of the three patch types applied to the stored object, or server-side
        apply (which creates a missing object). The result is validated like a PUT of it."""
        options = options or WriteOptions()
        if subresource == "scale":
            return self._patch_scale(rt, namespace, name, patch_type, patch, options)
        if patch_type == APPLY_PATCH:
            return self.apply(rt, namespace, name, patch, options, subresource, force)
        current = self.get(rt, namespace, name)
        return self.replace_object(rt, current, self.patched(rt, current, patch_type, patch, options), options, subresource)

    def stored_size(self, rt: ResourceType, namespace: str, name: str) -> int:
        """The bytes the object takes as JSON in the store (0 if there is none): what writing it costs."""
        found = self.store.get_raw(rt.key, namespace if rt.namespaced else "", name)
        return 0 if found is None else len(found[1])

    def patched(self, rt: ResourceType, current: dict[str, Any], patch_type: str, patch: Any, options: WriteOptions) -> Decoded:
        """`current` with a JSON, merge or strategic merge patch applied, decoded as a PUT of the result
        would be. A pure function (like `decoded`): `patch_offloaded` runs it on a worker thread."""
        if patch_type == STRATEGIC_MERGE_PATCH and not self.strategy(rt).strategic_merge:
            accepted = ", ".join((JSON_PATCH, MERGE_PATCH, APPLY_PATCH))
            raise errors.StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: {accepted}")
        result = _patched(current, patch_type, patch, kind_of(rt).merge_rules)
        if not isinstance(result, dict):
            raise errors.StatusError(422, "Invalid", "the patched object is not a JSON object")
        return self.decoded(rt, result, options)

    async def patch_offloaded(
        self, offload: Offload, rt: ResourceType, namespace: str, name: str, patch_type: str, patch: Any,
        options: WriteOptions, subresource: str | None = None, force: bool = False,
    ) -> WriteResult:
        """`patch` (any of the four types, server-side apply too) with its costly part, applying the patch
        and decoding the result, run by `offload` (the API's worker thread, for a large body) while the
        event loop goes on. Should the object change meanwhile, the patch is applied again to the newer one,
        as the API server's GuaranteedUpdate does (a resourceVersion the patch names is then checked against
        the newer one: a precondition); the last attempt runs on the loop, where nothing can come between."""
        key = (rt.key, namespace if rt.namespaced else "", name)
        if patch_type == APPLY_PATCH:
            _check_applied(name, patch, options)
        def moved(version: str | None) -> bool:  # written, created or deleted since `version` was read
            stored = self.store.get_raw(*key)
            return (None if stored is None else str(stored[0])) != version

        for _ in range(PATCH_ATTEMPTS - 1):
            current: dict[str, Any] | None = None
            try:
                if patch_type != APPLY_PATCH:
                    current = self.get(rt, namespace, name)
                    decoded = await offload(self.patched, rt, current, patch_type, patch, options)
                else:
                    live = self.store.get(*key)
                    if live is None and subresource:
                        raise errors.not_found(rt.key, name)
                    if live is None:  # applied to an object that is not there: created
                        decoded = await offload(self.decoded, rt, _applied_new(rt, patch, options), options)
                        if moved(None):
                            continue  # created meanwhile: merged into that one
                        return self.create(rt, namespace, decoded, options)
                    current = self._served(rt, live)
                    decoded = await offload(self.merged, rt, current, patch, options, force)
            except errors.StatusError:
                # found on an object that changed meanwhile (a conflict, a failed JSON patch test): tried
                # again on the newer one, as GuaranteedUpdate does; else it is the answer
                if current is not None and moved(current["metadata"].get("resourceVersion")):
                    continue
                raise
            if moved(current["metadata"].get("resourceVersion")):
                continue  # written (or deleted) meanwhile: once more, on what is stored now
            return self.replace_object(rt, current, decoded, options, subresource)
        return self.patch(rt, namespace, name, patch_type, patch, options, subresource, force)

    # -- the scale subresource ----------------------------------------------------------------------

    def _patch_scale(
        self, rt: ResourceType, namespace: str, name: str, patch_type: str, patch: Any, options: WriteOptions
    ) -> WriteResult:
        """PATCH .../scale (`kubectl scale` sends a merge patch): the patch applies to the Scale, whose
        spec.replicas is written to the object."""
        old = self.get(rt, namespace, name)
        # a Scale has no lists to merge by key; an apply patch to it is read as a merge patch
        patched = _patched(self.strategy(rt).scale(old) or scale_of(old), MERGE_PATCH if patch_type == APPLY_PATCH else patch_type, patch, {})
        return self._write_scale(rt, old, patched, options)

    def _write_scale(self, rt: ResourceType, old: dict[str, Any], scale: Any, options: WriteOptions) -> WriteResult:
        """Write a Scale's spec.replicas into `old` (its resourceVersion and uid, when given, are
        preconditions); answers with the Scale of the stored object."""
        name = old["metadata"]["name"]
        if not isinstance(scale, dict):
            raise errors.bad_request('Scale in version "v1" cannot be handled as a Scale: expected a JSON object')
        meta = scale.get("metadata") or {}
        spec = scale.get("spec") or {}
        if not isinstance(meta, dict) or not isinstance(spec, dict):
            raise errors.bad_request('Scale in version "v1" cannot be handled as a Scale: metadata and spec must be objects')
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(f'the name of the object ({meta["name"]}) does not match the name on the URL ({name})')
        if meta.get("uid") and meta["uid"] != old["metadata"].get("uid"):
            raise errors.conflict(rt.key, name, f'Precondition failed: UID in precondition: {meta["uid"]}, UID in object meta: {old["metadata"].get("uid")}')
        replicas = spec.get("replicas", 0)
        if replicas is None:
            replicas = 0
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            kind = {str: "string", float: "number", list: "array", dict: "object", bool: "bool"}.get(type(replicas), "value")
            raise errors.bad_request(f'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal {kind} into Go struct field ScaleSpec.spec.replicas of type int32')
        if replicas < 0:
            raise errors.invalid_object("Scale", "autoscaling", name, [errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
        new = _copy(old)
        strategy = self.strategy(rt)
        strategy.set_replicas(new, replicas)
        result = self._replace(rt, old, new, _parse_rv(meta.get("resourceVersion")), options, None, [])
        return WriteResult(strategy.scale(result.obj) or scale_of(result.obj), changed=result.changed)

    def apply(
        self, rt: ResourceType, namespace: str, name: str, applied: Any,
        options: WriteOptions | None = None, subresource: str | None = None, force: bool = False,
    ) -> WriteResult:
        """Server-side apply: create when absent, else merge this field manager's configuration
        (emulator/registry/managedfields.py keeps what each manager applied in `metadata.managedFields`)."""
        options = options or WriteOptions()
        _check_applied(name, applied, options)
        live = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if live is None and subresource:
            raise errors.not_found(rt.key, name)  # a subresource is applied to an object that exists
        if live is None:
            return self.create(rt, namespace, _applied_new(rt, applied, options), options)
        live = self._served(rt, live)  # merged in the version applied (a kind served in several converts)
        return self.replace_object(rt, live, self.merged(rt, live, applied, options, force), options, subresource)

    def merged(self, rt: ResourceType, live: dict[str, Any], applied: dict[str, Any], options: WriteOptions, force: bool) -> Decoded:
        """`live` with a field manager's apply configuration merged (its conflicts with other managers a
        409 unless `force`), decoded as a PUT of the result would be. Like `patched`, safe on a worker
        thread (`patch_offloaded` runs it there)."""
        manager = str(options.field_manager)
        rules = kind_of(rt).merge_rules
        managedfields.check_conflicts(rt, rules, live, manager, applied, force)
        previous = managedfields.applied_by(live).get(manager)
        try:
            merged = server_side_apply(live, applied, previous, rules)
        except PatchError as exc:
            raise errors.StatusError(422, "Invalid", f"the apply configuration could not be merged: {exc}") from exc
        merged.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
        merged["metadata"]["managedFields"] = live["metadata"].get("managedFields") or []
        managedfields.record(merged, rt, manager, applied)
        if managedfields.applied_by(merged) == managedfields.applied_by(live):
            merged["metadata"]["managedFields"] = live["metadata"].get("managedFields")  # unchanged: keep the old time stamp
        return self.decoded(rt, merged, options)

    def delete(
        self, rt: ResourceType, namespace: str, name: str,
        preconditions: dict[str, Any] | None = None, dry_run: bool = False, propagation: str | None = None,
        grace_period: int | None = None,
    ) -> dict[str, Any]:
        """Delete now, or mark for deletion while finalizers remain (they are cleared by updates).

        `grace_period` (DeleteOptions.gracePeriodSeconds) matters to objects the kind deletes gracefully
        (`Strategy.grace_period`: a pod the kubelet runs): they are marked Terminating with a
        deletionGracePeriodSeconds, and removed by whoever finishes them (`finalize`); 0 deletes now.

        `propagation` (DeleteOptions.propagationPolicy) says what happens to the object's dependents:
        Background (None: the default of every kind served) deletes the object now and the garbage
        collector its dependents after; Foreground and Orphan keep the object, marked for deletion, with
        the `foregroundDeletion` or `orphan` finalizer until the garbage collector has deleted the
        dependents that block it, or released all of them."""
        if propagation is not None and propagation not in PROPAGATION_POLICIES:
            raise errors.bad_request(f'unknown propagationPolicy "{propagation}": use Foreground, Background or Orphan')
        namespace = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            raise errors.not_found(rt.key, name)
        self.strategy(rt).check_delete(old)
        meta = old["metadata"]
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.conflict(rt.key, name, f'Precondition failed: UID in precondition: {preconditions["uid"]}, UID in object meta: {meta.get("uid")}')
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta.get("resourceVersion"):
                raise errors.conflict(rt.key, name, f'Precondition failed: ResourceVersion in precondition: {preconditions["resourceVersion"]}, ResourceVersion in object meta: {meta.get("resourceVersion")}')
        if dry_run:
            return old
        strategy = self.strategy(rt)
        grace = strategy.grace_period(old, grace_period)
        if grace is not None:
            if meta.get("deletionTimestamp") and int(meta.get("deletionGracePeriodSeconds") or 0) <= grace:
                return old  # already terminating, at least as soon
            meta["deletionTimestamp"] = rfc3339(time.time() + grace)
            meta["deletionGracePeriodSeconds"] = grace
            return self.store.update(rt.key, namespace, name, old)
        finalizers_changed = False
        if propagation is not None and not strategy.deletes_gracefully:
            current = list(meta.get("finalizers") or [])
            wanted = gc_finalizers(current, propagation)
            if wanted != current:
                finalizers_changed = True
                if wanted:
                    meta["finalizers"] = wanted
                else:
                    meta.pop("finalizers", None)
        if meta.get("finalizers") or strategy.deletes_gracefully:
            if meta.get("deletionTimestamp"):
                # deleted again with another policy: its finalizers change, the deletion stays pending
                return self.store.update(rt.key, namespace, name, old) if finalizers_changed else old
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            strategy.prepare_delete(old)
            return self.store.update(rt.key, namespace, name, old)
        return self._remove(rt, strategy, namespace, name, old)

    def finalize(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """Remove an object whatever its finalizers say (a controller finishing a graceful deletion)."""
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            return None
        return self._remove(rt, self.strategy(rt), namespace, name, old)

    def terminated(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        """A graceful deletion's grace is over (the kubelet stopped the pod's containers): the object goes
        now, or — while finalizers remain (a Job's pod not counted yet) — stays with a zero grace period
        and goes when the last one is removed, as the API server does with the kubelet's final delete."""
        old = self.store.get(rt.key, namespace, name)
        if old is None:
            return None
        if not old["metadata"].get("finalizers"):
            return self._remove(rt, self.strategy(rt), namespace, name, old)
        if int(old["metadata"].get("deletionGracePeriodSeconds") or 0) == 0:
            return old
        new = copy.deepcopy(old)
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        return self.store.update(rt.key, namespace, name, new, int(old["metadata"]["resourceVersion"]))

    def _remove(self, rt: ResourceType, strategy: Strategy, namespace: str, name: str, old: dict[str, Any]) -> dict[str, Any]:
        gone = self.store.delete(rt.key, namespace, name)
        strategy.release(old)
        return gone

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None, dry_run: bool = False,
        propagation: str | None = None, grace_period: int | None = None,
    ) -> list[dict[str, Any]]:
        return self._delete_each(rt, self._collection(rt, namespace, keep), dry_run, propagation, grace_period)

    async def delete_collection_paced(
        self, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None, dry_run: bool = False,
        propagation: str | None = None, grace_period: int | None = None,
    ) -> list[dict[str, Any]]:
        """`delete_collection`, DELETE_BATCH objects per turn of the event loop: what reacts to the
        deletions (controllers, watches), DNS answers and other requests go on in between (5,000 pods
        deleted in one go held the loop ~0.13 s)."""
        targets = self._collection(rt, namespace, keep)
        deleted: list[dict[str, Any]] = []
        for start in range(0, len(targets), DELETE_BATCH):
            if start:
                await asyncio.sleep(0)
            deleted += self._delete_each(rt, targets[start : start + DELETE_BATCH], dry_run, propagation, grace_period)
        return deleted

    def _collection(self, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None) -> list[tuple[str, str, str | None]]:
        """(namespace, name, uid) of what a deletecollection deletes."""
        metas = (orjson.loads(raw)["metadata"] for raw in self.list_raw(rt, namespace, keep))
        return [(meta.get("namespace", ""), meta["name"], meta.get("uid")) for meta in metas]

    def _delete_each(
        self, rt: ResourceType, targets: list[tuple[str, str, str | None]], dry_run: bool, propagation: str | None,
        grace_period: int | None,
    ) -> list[dict[str, Any]]:
        deleted = []
        for namespace, name, uid in targets:
            try:
                deleted.append(self.delete(rt, namespace, name, {"uid": uid} if uid else None, dry_run, propagation, grace_period))
            except errors.StatusError as exc:
                if exc.code == 404:  # removed meanwhile (a controller)
                    continue
                now = self.store.get(rt.key, namespace, name) if exc.code == 409 and uid else None
                if now is not None and now["metadata"].get("uid") != uid:
                    continue  # deleted and made again since it was listed: another object
                raise
        return deleted

    def ensure(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create or replace an object the emulator itself owns (Endpoints, slices, default service
        accounts): the whole write path, defaults and validation included, without a resourceVersion
        precondition. Returns the stored object, or None when nothing changed."""
        meta = obj["metadata"]
        namespace, name = meta.get("namespace", ""), meta["name"]
        if self.store.get_raw(rt.key, namespace if rt.namespaced else "", name) is None:
            return self.create(rt, namespace, obj).obj
        result = self.update(rt, namespace, name, obj)
        return result.obj if result.changed else None

    def bind(self, namespace: str, name: str, node: str) -> dict[str, Any]:
        """pods/binding, the scheduler's one write (emulator/controllers/scheduler.py): a pod waiting for a
        node gets `spec.nodeName` (which no update may change) and the status and address of a placed pod.
        409 when it already has a node."""
        strategy = self.strategy(PODS)
        old = self.store.get(PODS.key, namespace, name)
        if old is None:
            raise errors.not_found(PODS.key, name)
        if old["spec"].get("nodeName"):
            raise errors.conflict(PODS.key, name, f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"')
        if old["metadata"].get("deletionTimestamp"):
            raise errors.conflict(PODS.key, name, f"pod {name} is being deleted, cannot be assigned to a host")
        if old["spec"].get("schedulingGates"):
            raise errors.conflict(PODS.key, name, f"pod {name} has non-empty .spec.schedulingGates")
        obj = _copy(old)
        obj["spec"]["nodeName"] = node
        strategy.bound(obj)  # type: ignore[attr-defined]
        rv = int(old["metadata"]["resourceVersion"])
        return self._commit(strategy, obj, old, False, lambda: self.store.update(PODS.key, namespace, name, obj, rv))

    # -- helpers -------------------------------------------------------------------------------------

    def _validate(self, rt: ResourceType, strategy: Strategy, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = obj["metadata"]
        name = meta.get("name", "")
        problems: list[errors.FieldError] = []
        if old is None:
            for message in _NAME_RULES[strategy.name_rule](name):
                problems.append(errors.invalid("metadata.name", name, message))
        problems += validation.validate_labels(meta.get("labels"), "metadata.labels")
        problems += validation.validate_annotations(meta.get("annotations"), "metadata.annotations")
        problems += strategy.validate(obj)
        if old is not None:
            problems += strategy.validate_update(obj, old)
        if problems:
            raise errors.invalid_object(rt.kind, rt.group, name, problems)

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        found = self.store.get_raw(NAMESPACES.key, "", namespace)
        if found is None:
            raise errors.not_found(NAMESPACES.key, namespace)
        # decoded only when it may be terminating: every create in the namespace asks
        if b'"deletionTimestamp"' in found[1] and marked_for_deletion(orjson.loads(found[1])):
            raise errors.forbidden_request(
                f'{rt.key} "{name}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated'
            )

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        prefix = prefix[:58]
        for _ in range(16):
            name = prefix + validation.random_suffix()
            if self.store.get_raw(rt.key, namespace, name) is None:
                return name
        raise errors.StatusError(409, "AlreadyExists", f"could not generate a unique name from {prefix!r}; try again")


def _kept(raws: Iterable[bytes], keep: ObjectFilter | None, served: Callable[[dict[str, Any]], dict[str, Any]] | None, api_version: str) -> Iterator[bytes]:
    for raw in raws:
        if keep is None and served is None:
            yield raw
            continue
        obj = orjson.loads(raw)  # (once, for the filter and the conversion both)
        if keep is not None and not keep(obj):
            continue
        if served is None:
            yield raw
        else:
            yield orjson.dumps(obj if obj.get("apiVersion") == api_version else served(obj))


def _check_applied(name: str, applied: Any, options: WriteOptions) -> None:
    """An apply configuration's own faults (400): not an object, no field manager, another name."""
    if not isinstance(applied, dict):
        raise errors.bad_request("an apply patch must be an object")
    if not options.field_manager:
        raise errors.bad_request("fieldManager is required for apply requests (add ?fieldManager=<your-tool>)")
    applied_meta = applied.setdefault("metadata", {})
    if not isinstance(applied_meta, dict):
        raise errors.bad_request("metadata must be an object")
    if applied_meta.get("name") and applied_meta["name"] != name:
        raise errors.bad_request(f'the name of the object ({applied_meta["name"]}) does not match the name on the URL ({name})')
    applied_meta["name"] = name


def _applied_new(rt: ResourceType, applied: dict[str, Any], options: WriteOptions) -> dict[str, Any]:
    """What an apply configuration creates when its object is not there: itself, its manager recorded."""
    creating = {**applied, "metadata": dict(applied["metadata"])}  # (the patch itself left as it is: tried again)
    managedfields.record(creating, rt, str(options.field_manager), applied)
    return creating


def _patched(current: dict[str, Any], patch_type: str, patch: Any, rules: ListRules) -> Any:
    """`current` with a JSON, merge or strategic merge patch applied (lists merged by `rules`)."""
    try:
        if patch_type == MERGE_PATCH:
            return apply_merge_patch(current, patch)
        if patch_type == STRATEGIC_MERGE_PATCH:
            if not isinstance(patch, dict):
                raise PatchError("a strategic merge patch must be a JSON object")
            return apply_strategic_merge_patch(current, patch, rules)
        if patch_type == JSON_PATCH:
            if not isinstance(patch, list):
                raise PatchError("a JSON patch must be a list of operations")
            return apply_json_patch(current, patch)
    except PatchError as exc:
        raise errors.StatusError(422, "Invalid", f"the patch could not be applied: {exc}") from exc
    raise errors.unsupported_media_type(patch_type)


def _carry_over(strategy: Strategy, old: dict[str, Any], obj: dict[str, Any], subresource: str | None) -> dict[str, Any]:
    """What an update may not change, taken from the stored object: identity and server-set metadata;
    with the status subresource everything but status, without it the status (kinds that have one); with
    a subresource of `Strategy.subresource_fields` everything but its field, without it that field."""
    meta, old_meta = obj["metadata"], old["metadata"]
    for kept in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName"):
        if kept in old_meta:
            meta[kept] = old_meta[kept]
        else:
            meta.pop(kept, None)
    if subresource == "status":
        # copies: the strategy may change what it carries over, `old` must stay as stored
        merged = {k: v for k, v in _copy(old).items() if k != "status"}
        if "status" in obj:
            merged["status"] = obj["status"]
        return merged
    if subresource in strategy.subresource_fields:  # that one field of spec, the rest as stored
        key = strategy.subresource_fields[subresource]
        merged = _copy(old)
        merged.setdefault("spec", {}).pop(key, None)
        if key in (obj.get("spec") or {}):
            merged["spec"][key] = obj["spec"][key]
        return merged
    for key in strategy.subresource_fields.values():  # the main resource leaves them as stored
        spec = obj.setdefault("spec", {})
        spec.pop(key, None)
        if key in (old.get("spec") or {}):
            spec[key] = _copy(old["spec"][key])
    if strategy.has_status:
        if "status" in old:
            obj["status"] = _copy(old["status"])
        else:
            obj.pop("status", None)
    return obj


def _last_finalizer_removed(strategy: Strategy, obj: dict[str, Any], old: dict[str, Any]) -> bool:
    """An object marked for deletion whose last finalizer this update removes, and whose grace period is
    over (a pod the kubelet is still stopping stays until the kubelet is done); namespaces excepted: their
    controller finishes them."""
    meta = obj["metadata"]
    return (
        bool(meta.get("deletionTimestamp")) and bool(old["metadata"].get("finalizers"))
        and not meta.get("finalizers") and not strategy.deletes_gracefully
        and not int(meta.get("deletionGracePeriodSeconds") or 0)
    )


class _VersionWatch(Watch):
    """A watch through a version other than the storage one (a custom resource's, the Gateway API's,
    autoscaling/v1's): events carry the object as the version the client watches serves it."""

    def __init__(self, store: Store, rt: ResourceType, namespace: str | None, keep: ObjectFilter | None,
                 served: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        super().__init__(store, rt, namespace, keep)
        self.served = served

    def _as_watched(self, event: Event) -> Event:
        obj = self.served(orjson.loads(event.raw))
        return Event(event.type, event.resource, event.namespace, event.name, event.rv, orjson.dumps(obj))

    async def open(self, since: str) -> Iterable[Event]:
        return (self._as_watched(e) for e in await super().open(since))

    async def next(self, wait: float | None) -> Event | None:
        event = await super().next(wait)
        return None if event is None else self._as_watched(event)


def _parse_rv(value: Any) -> int | None:
    """A resourceVersion a client sent (a precondition), or None when it sent none."""
    if not value:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f'invalid resourceVersion "{value}": send the one the server returned, or none') from None


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (orjson round trip: several times faster than copy.deepcopy)."""
    return orjson.loads(orjson.dumps(value))


def _field_check(path: list[str], equal: bool, value: str, absent: str) -> ObjectFilter:
    def check(obj: dict[str, Any]) -> bool:
        current: Any = obj
        for part in path:
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            current = absent
        elif isinstance(current, bool):
            current = "true" if current else "false"
        return (str(current) == value) == equal

    return check
