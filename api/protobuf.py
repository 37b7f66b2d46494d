"""Decoding of Kubernetes protobuf request bodies into JSON-shaped dicts.

``kubectl create namespace|serviceaccount|service …`` send ``application/vnd.kubernetes.protobuf``
bodies: the magic ``k8s\\0`` followed by a ``runtime.Unknown`` whose ``raw`` field holds the object.
This module turns such a body into the dict the same object would have been as JSON, so the rest of
the API only ever sees JSON. It is a small protobuf wire-format reader; the message layouts are the
kinds' own (`Kind.protobuf` in emulator/kinds/); fields we do not know are skipped, as any protobuf
reader would. Everything is pure and raises :class:`ProtobufError`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from typing import Any

from emulator.kinds import PROTOBUF_LAYOUTS
from emulator.kinds.protobuf_layout import INT_OR_STRING, TIME, Field, Message
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
    unknown = _decode_message(envelope, UNKNOWN, "runtime.Unknown")
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


def _decode_message(data: bytes, layout: Message, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    seen: dict[str, Field] = {}
    for number, wire_type, value in _fields(data):
        field = layout.get(number)
        if field is None:
            continue  # a field this layout does not model; protobuf readers skip these
        path = f"{where}.{field.name}"
        decoded = _decode_field(field, wire_type, value, path)
        seen[field.name] = field
        if field.repeated:
            result.setdefault(field.name, []).append(decoded)
        elif field.type == "map":
            key, item = decoded
            result.setdefault(field.name, {})[key] = item
        else:
            result[field.name] = decoded
    return {name: value for name, value in result.items() if _keep(seen[name], value)}


def _keep(field: Field, value: Any) -> bool:
    """Mimic JSON ``omitempty``: drop zero values unless the field is a Go pointer."""
    if field.optional and not field.repeated:
        return value is not None
    return value not in (None, "", 0, False, {}, [])  # note 0 == False, both dropped


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
        entry = _decode_message(value, {1: Field("key", "string"), 2: Field("value", "string")}, path)
        return entry.get("key", ""), entry.get("value", "")
    if field.type == "int_or_string":
        return _int_or_string(_decode_message(value, INT_OR_STRING, path))
    if field.type == "time":
        return _rfc3339(_decode_message(value, TIME, path), path)
    raise AssertionError(f"unknown field type {field.type}")  # a bug in the layouts above


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


def _int_or_string(decoded: dict[str, Any]) -> int | str | None:
    # type 0 is an int, 1 a string; the zero value (int 0) means "unset", e.g. targetPort defaults to port.
    if decoded.get("type", 0) == 1:
        return decoded.get("strVal", "") or None
    return decoded.get("intVal", 0) or None


def _rfc3339(decoded: dict[str, Any], path: str) -> str | None:
    seconds = decoded.get("seconds", 0)
    if not seconds and not decoded.get("nanos"):
        return None  # the zero Time marshals to JSON null and is omitted
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"malformed protobuf: {path} is out of range ({seconds} seconds)") from None
    return moment.strftime(RFC3339)
