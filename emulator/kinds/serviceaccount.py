"""ServiceAccount (core/v1) and its `token` subresource (TokenRequest): the model, the columns, merge
keys and the protobuf layouts `kubectl create serviceaccount` and `kubectl create token` send; and the
ServiceAccount admission plugin's token volume (`mount_api_access`), which gives a new pod the in-cluster
credentials client libraries look for."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age
from emulator.kinds.protobuf_layout import LOCAL_OBJECT_REFERENCE, OBJECT_META, OBJECT_REFERENCE, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.models.meta import LocalObjectReference, ObjectReference, TypedObject
from emulator.registry.patch import ListRule, ListRules
from emulator.registry.strategy import Strategy
from emulator.validation import random_suffix

if TYPE_CHECKING:
    from emulator.store.store import Store

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


# What the API server's ServiceAccount admission mounts in every container of a new pod, and the ConfigMap
# that the root-CA publisher keeps in every namespace (emulator/controllers/namespaces.py): what client-go's
# rest.InClusterConfig() and the Python client's load_incluster_config() read.
API_ACCESS_VOLUME_PREFIX = "kube-api-access-"
API_ACCESS_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"
API_ACCESS_TOKEN_SECONDS = 3607  # the API server's: an hour and 7 seconds, so it can tell its own tokens
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"


def api_access_volume(name: str) -> dict[str, Any]:
    """The projected volume ServiceAccount admission adds: the pod's token, the cluster's CA, its namespace."""
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": API_ACCESS_TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": ROOT_CA_KEY, "path": ROOT_CA_KEY}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def mount_api_access(store: Store, pod: dict[str, Any]) -> None:
    """ServiceAccount admission on a new pod, as the API server's plugin does it: unless the pod (or else its
    service account) says `automountServiceAccountToken: false`, or it is a mirror pod, every init and
    regular container without a mount of its own at API_ACCESS_MOUNT_PATH mounts a `kube-api-access-xxxxx`
    projected volume there, read-only (an existing `kube-api-access-*` volume of the pod is reused)."""
    meta, spec = pod["metadata"], pod["spec"]
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        account = store.get(SERVICE_ACCOUNTS.key, meta.get("namespace") or "", spec.get("serviceAccountName") or "default")
        automount = (account or {}).get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.get("volumes") or []
    existing = next((v["name"] for v in volumes if str(v.get("name", "")).startswith(API_ACCESS_VOLUME_PREFIX)), None)
    name = existing or API_ACCESS_VOLUME_PREFIX + random_suffix()
    needed = False
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        mounts = container.get("volumeMounts") or []
        if not any(m.get("mountPath") == API_ACCESS_MOUNT_PATH for m in mounts):
            container["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": API_ACCESS_MOUNT_PATH}]
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, api_access_volume(name)]


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
