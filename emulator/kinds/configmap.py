"""ConfigMap (core/v1): the model (`binaryData` is base64, refused with the API server's 400 when it is
not), the API server's validation (config keys, a key in one map only, the 1 MiB total, `immutable`) and
the columns of `kubectl get configmaps`. Nothing runs for a ConfigMap: it is stored for pods and clients."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import model_validator

from emulator import validation
from emulator.errors import FieldError, forbidden, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.values import BYTES_MAP_ENTRY, Base64Bytes, GoDecodedObject, bytes_map_from_protobuf, decode_base64
from emulator.registry.strategy import Strategy

CONFIG_MAPS = ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",))

MAX_DATA_BYTES = 1024 * 1024  # core.MaxSecretSize: data and binaryData together (Secret data too)
IMMUTABLE_MESSAGE = "field is immutable when `immutable` is set"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_ERR_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_CONFIG_KEY_RE = re.compile(CONFIG_KEY_FMT)


def config_key_errors(key: str) -> list[str]:
    """IsConfigMapKey: the keys of ConfigMap and Secret data (they become file names in volumes)."""
    errs: list[str] = []
    if len(key) > validation.DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(validation.max_len_error(validation.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _CONFIG_KEY_RE.fullmatch(key):
        errs.append(validation.regex_error(CONFIG_KEY_ERR_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def validate_keys(data: dict[str, Any] | None, path: str) -> list[FieldError]:
    return [invalid(f"{path}[{key}]", key, m) for key in data or {} for m in config_key_errors(key)]


def validate_immutable(new: dict[str, Any], old: dict[str, Any], fields: tuple[str, ...]) -> list[FieldError]:
    """What an `immutable: true` ConfigMap or Secret refuses: turning it off, changing its contents."""
    if old.get("immutable") is not True:
        return []
    problems: list[FieldError] = []
    if new.get("immutable") is not True:
        problems.append(forbidden("immutable", IMMUTABLE_MESSAGE))
    for field in fields:
        if (new.get(field) or {}) != (old.get(field) or {}):
            problems.append(forbidden(field, IMMUTABLE_MESSAGE))
    return problems


def too_large(path: str) -> FieldError:
    return FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {MAX_DATA_BYTES} bytes")


class ConfigMap(GoDecodedObject):
    immutable: bool | None = None
    data: dict[str, str] | None = None
    binary_data: dict[str, Base64Bytes] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_protobuf(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("binaryData"), list):
            data = {**data, "binaryData": bytes_map_from_protobuf(data["binaryData"])}
        return data


class ConfigMapStrategy(Strategy):
    resource = CONFIG_MAPS
    model = ConfigMap

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        problems: list[FieldError] = []
        for key in data:
            problems += [invalid(f"data[{key}]", key, m) for m in config_key_errors(key)]
            if key in binary:
                problems.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        problems += validate_keys(binary, "binaryData")
        size = sum(len(v.encode()) for v in data.values()) + sum(len(decode_base64(v)) for v in binary.values())
        if size > MAX_DATA_BYTES:
            problems.append(too_large(""))
        return problems

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        return validate_immutable(new, old, ("data", "binaryData"))


def _config_map_cells(cm: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(cm, now)
    return [name, len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), created]


PRINTER = Printer(
    (
        NAME,
        Column(
            "Data",
            "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. "
            "Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not "
            "overlap with the keys in the BinaryData field, this is enforced during validation process.",
            type="integer",
        ),
        AGE,
    ),
    _config_map_cells,
)


# `kubectl create configmap` sends protobuf (k8s.io/api core/v1 generated.proto)
CONFIG_MAP_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("data", "map"),
    3: ProtoField("binaryData", "message", BYTES_MAP_ENTRY, repeated=True),
    4: ProtoField("immutable", "bool", optional=True),
}


KIND = Kind(CONFIG_MAPS, ConfigMapStrategy, PRINTER, protobuf={("v1", "ConfigMap"): CONFIG_MAP_PROTOBUF})
