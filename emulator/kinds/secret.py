"""Secret (core/v1): the model (`data` is base64, refused with the API server's 400 when it is not;
`stringData` is merged into `data` while decoding and never stored), the API server's validation (config
keys, the 1 MiB total, the keys each built-in type requires, `type` and `immutable` on update), the
`type` field selector and the columns of `kubectl get secrets`.

Nothing fills a secret in: a `kubernetes.io/service-account-token` secret keeps what its writer gave it
(there is no token controller)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from pydantic import model_validator

from emulator import errors
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.configmap import MAX_DATA_BYTES, too_large, validate_immutable, validate_keys
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.values import BYTES_MAP_ENTRY, Base64Bytes, GoDecodedObject, bytes_map_from_protobuf
from emulator.registry.strategy import Strategy

SECRETS = ResourceType("", "v1", "secrets", "Secret", True, "secret")

OPAQUE = "Opaque"
SERVICE_ACCOUNT_TOKEN = "kubernetes.io/service-account-token"
DOCKERCFG = "kubernetes.io/dockercfg"
DOCKER_CONFIG_JSON = "kubernetes.io/dockerconfigjson"
BASIC_AUTH = "kubernetes.io/basic-auth"
SSH_AUTH = "kubernetes.io/ssh-auth"
TLS = "kubernetes.io/tls"
SERVICE_ACCOUNT_NAME_ANNOTATION = "kubernetes.io/service-account.name"
REDACTED = "<secret contents redacted>"


class Secret(GoDecodedObject):
    immutable: bool | None = None
    data: dict[str, Base64Bytes] | None = None
    string_data: dict[str, str] | None = None
    type: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_protobuf(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = {**data, "data": bytes_map_from_protobuf(data["data"])}
        return data

    @model_validator(mode="after")
    def _merge_string_data(self) -> Secret:
        """The conversion to the internal Secret: `stringData` values win over `data` and are never kept."""
        if self.string_data:
            data = dict(self.data or {})
            for key, value in self.string_data.items():
                data[key] = base64.b64encode(value.encode()).decode()
            self.data = data
        self.string_data = None
        return self


def _bytes(obj: dict[str, Any], key: str) -> bytes | None:
    value = (obj.get("data") or {}).get(key)
    return None if value is None else base64.b64decode(value)


def _go_json_error(raw: bytes) -> str | None:
    """What encoding/json says of a docker config that is no JSON object (None when it is one)."""
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        text = raw.decode(errors="replace")
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        if pos >= len(text.rstrip()):
            return "unexpected end of JSON input"
        key = isinstance(exc, json.JSONDecodeError) and exc.msg.startswith("Expecting property name")
        return f"invalid character {text[pos]!r} looking for beginning of {'object key string' if key else 'value'}"
    if not isinstance(parsed, dict) and parsed is not None:
        kind = {list: "array", str: "string", bool: "bool"}.get(type(parsed), "number")
        return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    return None


def _validate_type(obj: dict[str, Any]) -> list[FieldError]:
    """The keys (and annotation) each built-in type requires."""
    kind = obj.get("type") or OPAQUE
    data = obj.get("data") or {}
    problems: list[FieldError] = []
    if kind == SERVICE_ACCOUNT_TOKEN:
        if not (obj["metadata"].get("annotations") or {}).get(SERVICE_ACCOUNT_NAME_ANNOTATION):
            problems.append(errors.required(f"metadata.annotations[{SERVICE_ACCOUNT_NAME_ANNOTATION}]"))
    elif kind in (DOCKERCFG, DOCKER_CONFIG_JSON):
        key = ".dockercfg" if kind == DOCKERCFG else ".dockerconfigjson"
        raw = _bytes(obj, key)
        if raw is None:
            problems.append(errors.required(f"data[{key}]"))
        elif (why := _go_json_error(raw)) is not None:
            problems.append(invalid(f"data[{key}]", REDACTED, why))
    elif kind == BASIC_AUTH:
        if "username" not in data and "password" not in data:
            problems += [errors.required("data[username]"), errors.required("data[password]")]
    elif kind == SSH_AUTH:
        if not _bytes(obj, "ssh-privatekey"):
            problems.append(errors.required("data[ssh-privatekey]"))
    elif kind == TLS:
        problems += [errors.required(f"data[{key}]") for key in ("tls.crt", "tls.key") if key not in data]
    return problems


class SecretStrategy(Strategy):
    resource = SECRETS
    model = Secret
    field_labels = {"type": ("type", "")}

    def prepare_create(self, obj: dict[str, Any]) -> None:
        if not obj.get("type"):
            obj["type"] = OPAQUE

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self.prepare_create(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        data = obj.get("data") or {}
        problems = validate_keys(data, "data")
        if sum(len(base64.b64decode(v)) for v in data.values()) > MAX_DATA_BYTES:
            problems.append(too_large("data"))
        return problems + _validate_type(obj)

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        problems: list[FieldError] = []
        if new.get("type") != old.get("type"):
            problems.append(invalid("type", new.get("type") or "", "field is immutable"))
        return problems + validate_immutable(new, old, ("data",))


def _secret_cells(secret: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(secret, now)
    return [name, secret.get("type") or "", len(secret.get("data") or {}), created]


PRINTER = Printer(
    (
        NAME,
        Column("Type", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
        Column(
            "Data",
            "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. "
            "The serialized form of the secret data is a base64 encoded string, representing the arbitrary "
            "(possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
        ),
        AGE,
    ),
    _secret_cells,
)


# `kubectl create secret` sends protobuf (k8s.io/api core/v1 generated.proto)
SECRET_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("data", "message", BYTES_MAP_ENTRY, repeated=True),
    3: ProtoField("type", "string"),
    4: ProtoField("stringData", "map"),
    5: ProtoField("immutable", "bool", optional=True),
}


KIND = Kind(SECRETS, SecretStrategy, PRINTER, protobuf={("v1", "Secret"): SECRET_PROTOBUF})
