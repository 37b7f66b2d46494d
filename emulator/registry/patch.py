"""Patch application on Kubernetes objects in wire form (plain JSON dicts, camelCase keys).

Four ways a client can change an object without sending it whole:
JSON merge patch (RFC 7386), JSON patch (RFC 6902), Kubernetes strategic merge patch (SMP, what
``kubectl apply`` and ``kubectl patch`` send) and an approximation of server-side apply (SSA).
Everything here is pure: inputs are never mutated, results are fresh objects, errors are
:class:`PatchError` values whose message can go straight into a 400/422 ``Status``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from emulator.limits import MAX_OBJECT_BYTES, encoded, too_large

__all__ = [
    "PatchError",
    "ListRule",
    "apply_merge_patch",
    "apply_json_patch",
    "apply_strategic_merge_patch",
    "server_side_apply",
    "find_conflicts",
    "list_rule",
]

Path = tuple[str, ...]


class PatchError(Exception):
    """A patch that cannot be applied; ``message`` tells the user what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------
# Per-kind list semantics (the patchStrategy / patchMergeKey / listType struct tags of k8s.io/api)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRule:
    """How one list field merges.

    ``merge_key`` is the SMP ``patchMergeKey`` (None for a merged list of scalars, a "set");
    ``ssa_keys`` are the SSA ``listMapKey``s (empty for a set); ``retain_keys`` marks the
    ``merge,retainKeys`` strategy. Lists with no rule at all are atomic: replaced wholesale.
    """

    merge_key: str | None
    ssa_keys: tuple[str, ...] = ()
    retain_keys: bool = False

    @property
    def is_set(self) -> bool:
        return self.merge_key is None


# Values the API server defaults inside list-map keys; an applied config that omits ``protocol``
# still means the live port whose protocol was defaulted to TCP.
_SSA_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}

_OBJECT_META_RULES: dict[Path, ListRule] = {
    ("metadata", "ownerReferences"): ListRule("uid", ("uid",)),
    ("metadata", "finalizers"): ListRule(None),
}


def container_rules(prefix: Path) -> dict[Path, ListRule]:
    # The same Container struct appears under containers, initContainers and ephemeralContainers.
    return {
        prefix: ListRule("name", ("name",)),
        (*prefix, "ports"): ListRule("containerPort", ("containerPort", "protocol")),
        (*prefix, "env"): ListRule("name", ("name",)),
        (*prefix, "volumeMounts"): ListRule("mountPath", ("mountPath",)),
        (*prefix, "volumeDevices"): ListRule("devicePath", ("devicePath",)),
    }


ListRules = Mapping[Path, ListRule]


def list_rule(rules: ListRules, path: Path) -> ListRule | None:
    """The merge rule for the list at ``path`` (field names only, no indexes): ObjectMeta's own lists,
    then the kind's ``rules`` (its `Kind.merge_rules`). A list with no rule is atomic."""
    rule = _OBJECT_META_RULES.get(path)
    if rule is not None:
        return rule
    return rules.get(path)


# --------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------------------------


def apply_merge_patch(target: dict, patch: Any) -> dict:
    """Apply an RFC 7386 merge patch: maps merge recursively, ``null`` deletes, lists are replaced."""
    if not isinstance(patch, dict):
        raise PatchError('a merge patch must be a JSON object, e.g. {"metadata": {"labels": {"a": "b"}}}')
    if not isinstance(target, dict):
        raise PatchError("the object to patch must be a JSON object")
    return _merge_value(target, patch)


def _merge_value(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_value(result.get(key), value)
    return result


# --------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------------------------


def apply_json_patch(target: dict, ops: list) -> dict:
    """Apply RFC 6902 operations in order; all or nothing (the input is never touched).

    The result's size is kept as a running estimate (what each add, replace and copy brings, measured on
    the value it brings), so a patch that doubles itself with `copy` is refused once it would pass the
    largest object a cluster stores, long before the doubling costs anything."""
    if not isinstance(ops, list):
        raise PatchError(
            'a JSON patch must be a JSON array of operations, e.g. [{"op": "add", "path": "/a", "value": 1}]'
        )
    raw = _encoded_or_fail(target)
    doc: Any = orjson.loads(raw)
    budget = _SizeBudget(len(raw))
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"JSON patch operation {index} must be an object")
        try:
            doc = _apply_operation(doc, op, budget)
        except PatchError as error:
            raise PatchError(
                f"JSON patch operation {index} ({op.get('op')!r} {op.get('path')!r}): {error.message}"
            ) from None
    if not isinstance(doc, dict):
        raise PatchError("the JSON patch would turn the object into a non-object")
    return doc


class _SizeBudget:
    """An upper bound on the document's encoded size; checked exactly only when the bound passes the limit."""

    def __init__(self, size: int) -> None:
        self.size = size

    def clone(self, value: Any, doc: Any) -> Any:
        """A copy of `value` about to be added to `doc`, counted against the limit."""
        raw = _encoded_or_fail(value)
        self.size += len(raw)
        if self.size > MAX_OBJECT_BYTES:
            self.size = len(encoded(doc, "the patched object")) + len(raw)  # the estimate ran over: measure
            if self.size > MAX_OBJECT_BYTES:
                raise too_large("the patched object", MAX_OBJECT_BYTES)
        return orjson.loads(raw)


def _encoded_or_fail(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise PatchError(f"the value is not JSON: {exc}") from None


def _apply_operation(doc: Any, op: dict, budget: _SizeBudget) -> Any:
    name = op.get("op")
    path = _parse_pointer(_required(op, "path"))
    if name == "add":
        return _add(doc, path, budget.clone(_required(op, "value"), doc))
    if name == "remove":
        return _remove(doc, path)[0]
    if name == "replace":
        value = budget.clone(_required(op, "value"), doc)
        if not path:
            return value  # replacing the whole document
        return _add(_remove(doc, path)[0], path, value)
    if name == "move":
        source = _parse_pointer(_required(op, "from"))
        if len(source) < len(path) and path[: len(source)] == source:
            raise PatchError("cannot move a value into one of its own children")
        doc, value = _remove(doc, source)
        return _add(doc, path, value)
    if name == "copy":
        source = _parse_pointer(_required(op, "from"))
        return _add(doc, path, budget.clone(_get(doc, source), doc))
    if name == "test":
        expected = _required(op, "value")
        actual = _get(doc, path)
        if not _json_equal(actual, expected):
            raise PatchError(f"test failed: the value is {json.dumps(actual)}, not {json.dumps(expected)}")
        return doc
    raise PatchError(f"unknown op {name!r}; use one of add, remove, replace, move, copy, test")


def _required(op: dict, member: str) -> Any:
    if member not in op:
        raise PatchError(f"the operation lacks the required member {member!r}")
    return op[member]


def _parse_pointer(pointer: Any) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped reference tokens."""
    if not isinstance(pointer, str):
        raise PatchError("a JSON pointer must be a string")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        # "~" may only introduce "~0" (tilde) or "~1" (slash).
        stripped = token.replace("~0", "").replace("~1", "")
        if "~" in stripped:
            raise PatchError(f"JSON pointer {pointer!r} has a '~' not followed by 0 or 1")
    # Decode ~1 before ~0 so that "~01" means the literal "~1".
    return [token.replace("~1", "/").replace("~0", "~") for token in tokens]


def _list_index(container: list, token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")) or not token.isascii():
        raise PatchError(f"{token!r} is not a valid array index")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} is out of range (the array has {len(container)} items)")
    return index


def _parent(doc: Any, path: list[str]) -> Any:
    return _get(doc, path[:-1])


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for depth, token in enumerate(path):
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path {_pointer(path[: depth + 1])} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"path {_pointer(path[:depth])} is not an object or array")
    return node


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _parent(doc, path)
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, token, allow_end=True), value)
    else:
        raise PatchError(f"path {_pointer(path[:-1])} is not an object or array")
    return doc


def _remove(doc: Any, path: list[str]) -> tuple[Any, Any]:
    """Remove the value at ``path``; returns (new document, removed value)."""
    if not path:
        raise PatchError("cannot remove the whole object")
    parent = _parent(doc, path)
    token = path[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"path {_pointer(path)} does not exist")
        return doc, parent.pop(token)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, token, allow_end=False))
    raise PatchError(f"path {_pointer(path[:-1])} is not an object or array")


def _pointer(path: Iterable[str]) -> str:
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in path) or '""'


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python ``==``, ``true`` is not ``1``; ``1`` equals ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------------

_DIRECTIVE = "$patch"
_SET_ELEMENT_ORDER = "$setElementOrder/"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
_RETAIN_KEYS = "$retainKeys"


def apply_strategic_merge_patch(target: dict, patch: dict, rules: ListRules) -> dict:
    """Apply a Kubernetes strategic merge patch to an object whose lists merge by ``rules``.

    Like a merge patch, except lists with a merge key merge item by item, merged scalar lists
    (``metadata.finalizers``) take the union, and the ``$patch``, ``$setElementOrder/…``,
    ``$deleteFromPrimitiveList/…`` and ``$retainKeys`` directives apply. Kinds without special
    lists (ConfigMap, …) are accepted too: only their ObjectMeta lists merge.
    """
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    if not isinstance(target, dict):
        raise PatchError("the object to patch must be a JSON object")
    return _SmpMerger(rules).merge_map(copy.deepcopy(target), patch, ())


class _SmpMerger:
    """One SMP application; carries the list rules so nested merges can look them up."""

    def __init__(self, rules: ListRules) -> None:
        self.rules = rules

    def merge_map(self, original: dict, patch: dict, path: Path) -> dict:
        """Merge ``patch`` into ``original`` (which this call may modify and returns)."""
        directive = patch.get(_DIRECTIVE, "merge")
        if directive == "replace":
            # The map becomes exactly the patch (still honouring nested directives and nulls).
            return self.merge_map({}, {k: v for k, v in patch.items() if k != _DIRECTIVE}, path)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise PatchError(f"unknown $patch directive {directive!r} at {_dotted(path)}; use merge, replace or delete")

        if _RETAIN_KEYS in patch:
            original = self._retain_keys(original, patch, path)
        for key, value in patch.items():
            if key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
                field = key[len(_DELETE_FROM_PRIMITIVE_LIST) :]
                original = self._delete_from_primitive_list(original, field, value, path)

        for key, value in patch.items():
            if key.startswith("$"):
                continue
            field_path = (*path, key)
            if value is None:
                original.pop(key, None)
            elif isinstance(value, dict):
                if value.get(_DIRECTIVE) == "delete":
                    # Go would serialise the resulting empty struct/map away (omitempty).
                    original.pop(key, None)
                    continue
                current = original.get(key)
                original[key] = self.merge_map(current if isinstance(current, dict) else {}, value, field_path)
            elif isinstance(value, list):
                current = original.get(key)
                original[key] = self.merge_list(current if isinstance(current, list) else [], value, field_path)
            else:
                original[key] = copy.deepcopy(value)

        for key, value in patch.items():
            if key.startswith(_SET_ELEMENT_ORDER):
                field = key[len(_SET_ELEMENT_ORDER) :]
                if isinstance(original.get(field), list):
                    original[field] = self._set_element_order(original[field], value, (*path, field))
        return original

    def merge_list(self, original: list, patch: list, path: Path) -> list:
        rule = list_rule(self.rules, path)
        if rule is None:
            # No merge strategy: the patch list is the new list.
            return copy.deepcopy(patch)
        replace_markers = [item for item in patch if _is_directive_only(item, "replace")]
        if replace_markers:
            original = []
            patch = [item for item in patch if not _is_directive_only(item, "replace")]
        if rule.is_set:
            return self._merge_set(original, patch, path)
        return self._merge_keyed(original, patch, rule.merge_key or "", path)

    def _merge_set(self, original: list, patch: list, path: Path) -> list:
        result = list(original)
        for item in patch:
            if isinstance(item, dict | list):
                raise PatchError(f"{_dotted(path)} is a list of scalars; {json.dumps(item)} is not a scalar")
            if item not in result:
                result.append(item)
        return result

    def _merge_keyed(self, original: list, patch: list, key: str, path: Path) -> list:
        result = list(original)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise PatchError(
                    f"each item of {_dotted(path)} must be an object with the merge key {key!r}; got {json.dumps(item)}"
                )
            position = _find_by_key(result, key, item[key])
            directive = item.get(_DIRECTIVE, "merge")
            if directive == "delete":
                result = [element for element in result if not _has_key_value(element, key, item[key])]
            elif directive == "replace":
                replacement = self.merge_map({}, {k: v for k, v in item.items() if k != _DIRECTIVE}, path)
                if position is None:
                    result.append(replacement)
                else:
                    result[position] = replacement
            elif position is None:
                result.append(self.merge_map({}, item, path))
            else:
                result[position] = self.merge_map(result[position], item, path)
        return result

    def _retain_keys(self, original: dict, patch: dict, path: Path) -> dict:
        keys = patch[_RETAIN_KEYS]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise PatchError(f"$retainKeys at {_dotted(path)} must be a list of field names")
        missing = [k for k in patch if not k.startswith("$") and k not in keys and patch[k] is not None]
        if missing:
            raise PatchError(f"$retainKeys at {_dotted(path)} must list every field the patch sets; missing {missing}")
        return {k: v for k, v in original.items() if k in keys}

    def _delete_from_primitive_list(self, original: dict, field: str, values: Any, path: Path) -> dict:
        if not isinstance(values, list):
            raise PatchError(f"$deleteFromPrimitiveList/{field} at {_dotted(path)} must be a list")
        current = original.get(field)
        if isinstance(current, list):
            remaining = [item for item in current if item not in values]
            if remaining:
                original[field] = remaining
            else:
                original.pop(field)
        return original

    def _set_element_order(self, items: list, order: Any, path: Path) -> list:
        if not isinstance(order, list):
            raise PatchError(f"$setElementOrder/{path[-1]} at {_dotted(path[:-1])} must be a list")
        rule = list_rule(self.rules, path)
        if rule is None:
            return items
        if rule.is_set:
            return _reorder(items, [_identity_token(v) for v in order], _identity_token)
        key = rule.merge_key or ""
        wanted = [_identity_token(entry.get(key)) for entry in order if isinstance(entry, dict)]
        return _reorder(items, wanted, lambda item: _identity_token(item.get(key) if isinstance(item, dict) else None))


def _is_directive_only(item: Any, directive: str) -> bool:
    return isinstance(item, dict) and item.get(_DIRECTIVE) == directive and len(item) == 1


def _has_key_value(element: Any, key: str, value: Any) -> bool:
    return isinstance(element, dict) and key in element and _json_equal(element[key], value)


def _find_by_key(items: list, key: str, value: Any) -> int | None:
    for index, element in enumerate(items):
        if _has_key_value(element, key, value):
            return index
    return None


def _reorder(items: list, order: list[str], token: Callable[[Any], str]) -> list:
    """Put the items whose token appears in ``order`` in that order; others keep their slots.

    Items the client did not mention (added by someone else) stay where they are; the slots held
    by mentioned items are refilled in the requested order.
    """
    rank: dict[str, int] = {}
    for position, value in enumerate(order):
        rank.setdefault(value, position)
    slots = [i for i, item in enumerate(items) if token(item) in rank]
    ordered = sorted((items[i] for i in slots), key=lambda item: rank[token(item)])
    result = list(items)
    for slot, item in zip(slots, ordered, strict=True):
        result[slot] = item
    return result


def _identity_token(value: Any) -> str:
    # JSON text makes values hashable and keeps 1 and "1" (and true and 1) distinct.
    return json.dumps(value, sort_keys=True)


def _dotted(path: Path) -> str:
    return "." + ".".join(path) if path else "the top level"


# --------------------------------------------------------------------------------------------
# Server-side apply (approximation)
# --------------------------------------------------------------------------------------------


def server_side_apply(live: dict | None, applied: dict, previous: dict | None, rules: ListRules) -> dict:
    """Approximate server-side apply of ``applied`` by one field manager.

    ``previous`` is the configuration this manager applied last time (None if never). Fields it
    set then but no longer mentions are removed from ``live``; then ``applied`` is merged in with
    the SSA list-map keys (``ServiceSpec.ports`` by port+protocol, containers by name, …), atomic
    lists replaced. Fields another manager added beside them stay; but unlike real SSA, a field is
    removed even if another manager set it to the same value as well. An explicit ``null`` in
    ``applied`` removes the field.
    """
    if not isinstance(applied, dict):
        raise PatchError("an apply configuration must be a JSON or YAML object")
    if live is None:
        return _strip_nulls(applied)
    ssa = _SsaMerger(rules)
    result = copy.deepcopy(live)
    if previous:
        result = ssa.prune(result, previous, applied, ())
    return ssa.merge_map(result, applied, ())


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


class _SsaMerger:
    def __init__(self, rules: ListRules) -> None:
        self.rules = rules

    def identity(self, item: Any, rule: ListRule) -> str:
        """Identity of a list element: its list-map keys (with server defaults) or its value."""
        if rule.is_set or not rule.ssa_keys or not isinstance(item, dict):
            return _identity_token(item)
        return _identity_token([item.get(k, _SSA_KEY_DEFAULTS.get(k)) for k in rule.ssa_keys])

    def prune(self, live: dict, previous: dict, applied: dict, path: Path) -> dict:
        """Remove from ``live`` what ``previous`` set and ``applied`` no longer mentions."""
        for key, before in previous.items():
            if key not in live:
                continue
            current, field_path = live[key], (*path, key)
            if key not in applied:
                # the manager stopped applying this field: remove what it set, not what others added
                remaining: Any = None
                if isinstance(before, dict) and isinstance(current, dict):
                    remaining = self.prune(current, before, {}, field_path)
                elif isinstance(before, list) and isinstance(current, list) and list_rule(self.rules, field_path):
                    remaining = self.prune_list(current, before, [], field_path)
                if remaining:
                    live[key] = remaining
                else:
                    del live[key]
                continue
            if applied[key] is None:
                del live[key]
                continue
            now = applied[key]
            if isinstance(before, dict) and isinstance(now, dict) and isinstance(current, dict):
                live[key] = self.prune(current, before, now, field_path)
            elif isinstance(before, list) and isinstance(now, list) and isinstance(current, list):
                live[key] = self.prune_list(current, before, now, field_path)
        return live

    def prune_list(self, live: list, previous: list, applied: list, path: Path) -> list:
        rule = list_rule(self.rules, path)
        if rule is None:
            return live  # atomic: the merge replaces it anyway
        still_applied = {self.identity(item, rule): item for item in applied}
        dropped = {self.identity(item, rule) for item in previous} - still_applied.keys()
        result = []
        for item in live:
            identity = self.identity(item, rule)
            if identity in dropped:
                continue
            before = next((p for p in previous if self.identity(p, rule) == identity), None)
            if isinstance(item, dict) and isinstance(before, dict) and isinstance(still_applied.get(identity), dict):
                item = self.prune(item, before, still_applied[identity], path)
            result.append(item)
        return result

    def merge_map(self, live: dict, applied: dict, path: Path) -> dict:
        for key, value in applied.items():
            field_path = (*path, key)
            current = live.get(key)
            if value is None:
                live.pop(key, None)
            elif isinstance(value, dict) and isinstance(current, dict):
                live[key] = self.merge_map(current, value, field_path)
            elif isinstance(value, list) and isinstance(current, list):
                live[key] = self.merge_list(current, value, field_path)
            else:
                live[key] = _strip_nulls(value)
        return live

    def merge_list(self, live: list, applied: list, path: Path) -> list:
        rule = list_rule(self.rules, path)
        if rule is None:
            return _strip_nulls(applied)
        result = list(live)
        for item in applied:
            identity = self.identity(item, rule)
            position = next((i for i, e in enumerate(result) if self.identity(e, rule) == identity), None)
            if position is None:
                result.append(_strip_nulls(item))
            elif isinstance(item, dict) and isinstance(result[position], dict):
                result[position] = self.merge_map(result[position], item, path)
        # The applier's order wins for the elements it owns; others keep their slots.
        order = [self.identity(item, rule) for item in applied]
        return _reorder(result, order, lambda item: self.identity(item, rule))


def find_conflicts(applied: dict, other_managers: dict[str, dict], rules: ListRules) -> list[tuple[str, str]]:
    """Fields ``applied`` sets to a value different from what another manager last applied.

    ``other_managers`` maps a field manager name to the configuration it last applied. Returns
    ``(manager, field_path)`` pairs, paths in SSA notation, e.g.
    ``.spec.ports[port=80,protocol="TCP"].targetPort``. Keyed list elements are compared item by
    item; atomic lists and scalars as a whole. A server answers these with 409 unless ``force``.
    """
    ssa = _SsaMerger(rules)
    conflicts: list[tuple[str, str]] = []
    for manager, config in sorted(other_managers.items()):
        if isinstance(config, dict):
            for field in _conflicting_fields(ssa, applied, config, (), ""):
                conflicts.append((manager, field))
    return conflicts


def _conflicting_fields(ssa: _SsaMerger, mine: Any, theirs: Any, path: Path, shown: str) -> list[str]:
    if isinstance(mine, dict) and isinstance(theirs, dict):
        found: list[str] = []
        for key, value in mine.items():
            if key in theirs and value is not None and theirs[key] is not None:
                found += _conflicting_fields(ssa, value, theirs[key], (*path, key), f"{shown}.{key}")
        return found
    rule = list_rule(ssa.rules, path)
    if isinstance(mine, list) and isinstance(theirs, list) and rule is not None:
        found = []
        for item in mine:
            identity = ssa.identity(item, rule)
            other = next((t for t in theirs if ssa.identity(t, rule) == identity), None)
            if other is not None and not rule.is_set:
                found += _conflicting_fields(ssa, item, other, path, shown + _element_label(item, rule))
        return found
    return [] if _json_equal(mine, theirs) else [shown]


def _element_label(item: Any, rule: ListRule) -> str:
    if not isinstance(item, dict):
        return f"[{json.dumps(item)}]"
    parts = [f"{k}={json.dumps(item.get(k, _SSA_KEY_DEFAULTS.get(k)))}" for k in rule.ssa_keys]
    return "[" + ",".join(parts) + "]"
