"""Decoding of Kubernetes protobuf request bodies into JSON-shaped dicts.

``kubectl create namespace|serviceaccount|service …`` send ``application/vnd.kubernetes.protobuf``
bodies: the magic ``k8s\\0`` followed by a ``runtime.Unknown`` whose ``raw`` field holds the object.
This module turns such a body into the dict the same object would have been as JSON, so the rest of
the API only ever sees JSON. It is a small protobuf wire-format reader; the message layouts are the
kinds' own (`Kind.protobuf` in emulator/kinds/), every field of their 1.32 messages.

A field number a layout does not know (one a later release added) is never dropped without a trace: it
becomes the key ``protobuf field <n>`` of the object it was in, an unknown field the write path names
in a Warning header (`unknown field "spec.containers[0].protobuf field 99"`) and drops, also under
Strict: a real API server drops such a field silently, and refuses nothing for it. Only an
unknown field that carries nothing (a zero number, empty bytes, a message of nothing but those: what
gogo-proto writes for an unset non-pointer field) is skipped quietly. Everything is pure and raises
:class:`ProtobufError`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from emulator.kinds import PROTOBUF_LAYOUTS
from emulator.kinds.protobuf_layout import INT_OR_STRING, QUANTITY, TIME, UNKNOWN_FIELD_PREFIX, Field, Message
from emulator.timestamps import RFC3339

__all__ = ["ProtobufError", "decode_k8s_protobuf"]

MAGIC = b"k8s\x00"


class ProtobufError(Exception):
    """A protobuf body we cannot decode; ``message`` says why, for a 400/415 Status."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------------------------
# Wire format
# --------------------------------------------------------------------------------------------

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
_WIRE_TYPE_NAMES = {VARINT: "varint", FIXED64: "fixed64", LENGTH_DELIMITED: "length-delimited", FIXED32: "fixed32"}

WireValue = int | bytes


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    """Read a base-128 varint at ``position``; returns (value, next position)."""
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(data):
            raise ProtobufError("truncated protobuf: a varint runs past the end of the body")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            # Ten bytes carry at most 64 significant bits; anything above is malformed.
            if value >= 1 << 64:
                raise ProtobufError("malformed protobuf: a varint is larger than 64 bits")
            return value, position
    raise ProtobufError("malformed protobuf: a varint is longer than 10 bytes")


def _fields(data: bytes) -> Iterator[tuple[int, int, WireValue]]:
    """Yield (field number, wire type, value) for each field of one message."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("malformed protobuf: field number 0")
        value: WireValue
        if wire_type == VARINT:
            value, position = _read_varint(data, position)
        elif wire_type == LENGTH_DELIMITED:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise ProtobufError(f"truncated protobuf: field {number} needs {length} bytes, fewer remain")
            value, position = data[position : position + length], position + length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if position + size > len(data):
                raise ProtobufError(f"truncated protobuf: field {number} needs {size} bytes, fewer remain")
            value, position = int.from_bytes(data[position : position + size], "little"), position + size
        else:
            # 3 and 4 are the long-deprecated groups; Kubernetes never writes them.
            raise ProtobufError(f"malformed protobuf: unsupported wire type {wire_type} in field {number}")
        yield number, wire_type, value


def _signed(value: int) -> int:
    # int32/int64 are two's complement in 64 bits (negative int32s are sign-extended too).
    return value - (1 << 64) if value >= 1 << 63 else value


# --------------------------------------------------------------------------------------------
# Message layouts
# --------------------------------------------------------------------------------------------


_SCALAR_TYPES = {"int", "bool"}

UNKNOWN: Message = {
    1: Field("typeMeta", "message", {1: Field("apiVersion", "string"), 2: Field("kind", "string")}),
    # The object itself: kept as bytes and decoded once typeMeta says which layout it has.
    2: Field("raw", "bytes"),
    3: Field("contentEncoding", "string"),
    4: Field("contentType", "string"),
}


# meta/v1 DeleteOptions (apimachinery generated.proto): what a typed client's DELETE carries (`kubectl drain`
# deletes pods so). Every field is a Go pointer: a grace period of 0 is sent and kept.
PRECONDITIONS: Message = {1: Field("uid", "string", optional=True), 2: Field("resourceVersion", "string", optional=True)}
DELETE_OPTIONS: Message = {
    1: Field("gracePeriodSeconds", "int", optional=True),
    2: Field("preconditions", "message", PRECONDITIONS, optional=True),
    3: Field("orphanDependents", "bool", optional=True),
    4: Field("propagationPolicy", "string", optional=True),
    5: Field("dryRun", "string", repeated=True),
}
# options kinds Go registers in every group version (`v1 DeleteOptions`, `apps/v1 DeleteOptions`, ...)
OPTIONS_LAYOUTS: Mapping[str, Message] = {"DeleteOptions": DELETE_OPTIONS}


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_k8s_protobuf(body: bytes, layouts: Mapping[tuple[str, str], Message] = PROTOBUF_LAYOUTS) -> dict[str, Any]:
    """Decode a ``k8s\\0``-framed ``runtime.Unknown`` body into a JSON-shaped object dict, with the layout
    `layouts` has for its (apiVersion, kind): by default every layout a served kind declares.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ProtobufError("a protobuf body must be bytes")
    body = bytes(body)
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body: it does not start with the magic bytes 'k8s\\x00'")
    envelope = body[len(MAGIC) :]
    unknown = _decode_message(envelope, UNKNOWN, "runtime.Unknown", report=False)
    if unknown.get("contentEncoding"):
        raise ProtobufError(
            f"unsupported protobuf contentEncoding {unknown['contentEncoding']!r}; send it uncompressed"
        )
    type_meta = unknown.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    if not kind:
        raise ProtobufError("the protobuf body does not say which kind it holds (runtime.Unknown.typeMeta.kind)")
    layout = layouts.get((api_version, kind)) or OPTIONS_LAYOUTS.get(kind)
    if layout is None:
        supported = ", ".join([*(" ".join(k) for k in sorted(layouts)), *(f"{k} (any version)" for k in OPTIONS_LAYOUTS)])
        raise ProtobufError(
            f"protobuf bodies are decoded only for {supported}, not {api_version or '<no apiVersion>'} {kind}; "
            "send this object as JSON (Content-Type: application/json)"
        )
    return {"apiVersion": api_version, "kind": kind, **_decode_message(unknown.get("raw", b""), layout, kind)}


def _decode_message(data: bytes, layout: Message, where: str, report: bool = True) -> dict[str, Any]:
    """One message as a JSON object. With `report`, a field number `layout` lacks that carries something
    becomes the key `protobuf field <n>` (an unknown field for the write path to report); without (the
    envelope, apimachinery's fixed helper messages), it is skipped."""
    result: dict[str, Any] = {}
    seen: dict[str, Field] = {}
    for number, wire_type, value in _fields(data):
        field = layout.get(number)
        if field is None:
            if report and _carries_data(wire_type, value):
                result[f"{UNKNOWN_FIELD_PREFIX}{number}"] = _describe(wire_type, value)
            continue
        path = f"{where}.{field.name}"
        decoded = _decode_field(field, wire_type, value, path)
        if field.inline:  # an embedded Go struct: its fields are the enclosing object's
            result.update(decoded)
            continue
        seen[field.name] = field
        if field.repeated:
            result.setdefault(field.name, []).append(decoded)
        elif field.type == "map":
            key, item = decoded
            result.setdefault(field.name, {})[key] = item
        else:
            result[field.name] = decoded
    return {name: value for name, value in result.items() if name not in seen or _keep(seen[name], value)}


def _keep(field: Field, value: Any) -> bool:
    """Mimic JSON ``omitempty``: drop zero values unless the field is a Go pointer or has no omitempty."""
    if field.optional and not field.repeated:
        return value is not None
    return value not in (None, "", 0, False, {}, [])  # note 0 == False, both dropped


def _carries_data(wire_type: int, value: WireValue, depth: int = 0) -> bool:
    """Whether an unknown field holds anything: not a zero number, empty bytes, or a message made of
    nothing else (what gogo-proto writes for a non-pointer field left unset, an empty struct included).
    A string whose bytes happen to parse as such a message would count as empty: no text is spelt so."""
    if isinstance(value, int):
        return value != 0
    if not value:
        return False
    if depth > _MAX_EMPTY_DEPTH:
        return True  # (no empty struct nests this deep; a crafted body is not walked further)
    try:
        return any(_carries_data(inner_wire, inner, depth + 1) for _, inner_wire, inner in _fields(value))
    except ProtobufError:
        return True  # not a message: a string or bytes, and not empty


_MAX_EMPTY_DEPTH = 16


def _describe(wire_type: int, value: WireValue) -> str:
    """What an unknown field held, for the object it is reported in (dropped by the write path)."""
    if isinstance(value, int):
        return f"{_WIRE_TYPE_NAMES[wire_type]} {value}"
    return f"{len(value)} bytes"


def _decode_field(field: Field, wire_type: int, value: WireValue, path: str) -> Any:
    if field.type in _SCALAR_TYPES:
        _expect_wire_type(wire_type, VARINT, path)
        assert isinstance(value, int)
        return value != 0 if field.type == "bool" else _signed(value)
    _expect_wire_type(wire_type, LENGTH_DELIMITED, path)
    assert isinstance(value, bytes)
    if field.type == "string":
        return _utf8(value, path)
    if field.type == "bytes":
        return value
    if field.type == "message":
        assert field.message is not None
        return _decode_message(value, field.message, path)
    if field.type == "map":
        entry = _decode_message(value, _MAP_ENTRIES[field.value], path, report=False)
        return entry.get("key", ""), entry.get("value", "0" if field.value == "quantity" else "")
    if field.type == "quantity":
        return _decode_message(value, QUANTITY, path, report=False).get("string", "0")
    if field.type == "int_or_string":
        return _int_or_string(_decode_message(value, INT_OR_STRING, path, report=False))
    if field.type == "time":
        return _rfc3339(_decode_message(value, TIME, path, report=False), path)
    if field.type == "fields_v1":
        return _raw_json(_decode_message(value, _FIELDS_V1, path, report=False).get("raw", b""), path)
    raise AssertionError(f"unknown field type {field.type}")  # a bug in the layouts above


# map<string, V> entries, by V; a Quantity's value is written as `string` (`"0"` when unset)
_MAP_ENTRIES: Mapping[str, Message] = {
    "string": {1: Field("key", "string"), 2: Field("value", "string")},
    "quantity": {1: Field("key", "string"), 2: Field("value", "quantity")},
}
_FIELDS_V1: Message = {1: Field("raw", "bytes")}


def _raw_json(raw: bytes, path: str) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtobufError(f"malformed protobuf: {path} is not JSON") from None


def _expect_wire_type(actual: int, expected: int, path: str) -> None:
    if actual != expected:
        raise ProtobufError(
            f"malformed protobuf: {path} should be {_WIRE_TYPE_NAMES[expected]}, got {_WIRE_TYPE_NAMES[actual]}"
        )


def _utf8(value: bytes, path: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError(f"malformed protobuf: {path} is not valid UTF-8") from None


def _int_or_string(decoded: dict[str, Any]) -> int | str:
    # type 0 is an int, 1 a string. The zero value (int 0) of a non-pointer field means "unset" (a
    # targetPort defaults to the port) and `_keep` drops it; a pointer's 0 (`maxUnavailable: 0`) is kept.
    if decoded.get("type", 0) == 1:
        return str(decoded.get("strVal", ""))
    return int(decoded.get("intVal", 0))


def _rfc3339(decoded: dict[str, Any], path: str) -> str | None:
    seconds = decoded.get("seconds", 0)
    if not seconds and not decoded.get("nanos"):
        return None  # the zero Time marshals to JSON null and is omitted
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"malformed protobuf: {path} is out of range ({seconds} seconds)") from None
    return moment.strftime(RFC3339)
