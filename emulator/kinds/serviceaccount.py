"""ServiceAccount (core/v1) and its `token` subresource (TokenRequest): the model, the columns, merge
keys and the protobuf layouts `kubectl create serviceaccount` and `kubectl create token` send."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age
from emulator.kinds.protobuf_layout import LOCAL_OBJECT_REFERENCE, OBJECT_META, OBJECT_REFERENCE, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.models.meta import LocalObjectReference, ObjectReference, TypedObject
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy

SERVICE_ACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", ("sa",),
    subresources=(Subresource("token", ("create",), "TokenRequest", "authentication.k8s.io", "v1"),),
)
AUTHENTICATION_V1 = "authentication.k8s.io/v1"


class ServiceAccount(TypedObject):
    secrets: list[ObjectReference] | None = None
    image_pull_secrets: list[LocalObjectReference] | None = None
    automount_service_account_token: bool | None = None


class ServiceAccountStrategy(Strategy):
    resource = SERVICE_ACCOUNTS
    model = ServiceAccount


MERGE_RULES: ListRules = {("secrets",): ListRule("name", ("name",))}


def _service_account_cells(sa: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(sa, now)
    return [name, len(sa.get("secrets") or []), created]


PRINTER = Printer(
    (
        NAME,
        Column(
            "Secrets",
            "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
            type="integer",
        ),
        AGE,
    ),
    _service_account_cells,
)


SERVICE_ACCOUNT_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("secrets", "message", OBJECT_REFERENCE, repeated=True),
    3: ProtoField("imagePullSecrets", "message", LOCAL_OBJECT_REFERENCE, repeated=True),
    4: ProtoField("automountServiceAccountToken", "bool", optional=True),
}

# kubectl create token sends its TokenRequest (the token subresource's body) as protobuf
# (k8s.io/api authentication/v1 generated.proto).
_BOUND_OBJECT_REF: Message = {
    1: ProtoField("kind", "string"), 2: ProtoField("apiVersion", "string"), 3: ProtoField("name", "string"),
    4: ProtoField("uid", "string"),
}
TOKEN_REQUEST_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {
        1: ProtoField("audiences", "string", repeated=True),
        3: ProtoField("boundObjectRef", "message", _BOUND_OBJECT_REF),
        4: ProtoField("expirationSeconds", "int", optional=True),
    }),
}


KIND = Kind(
    SERVICE_ACCOUNTS, ServiceAccountStrategy, PRINTER, MERGE_RULES,
    {("v1", "ServiceAccount"): SERVICE_ACCOUNT_PROTOBUF, (AUTHENTICATION_V1, "TokenRequest"): TOKEN_REQUEST_PROTOBUF},
)
