"""APIService (apiregistration.k8s.io/v1, cluster-scoped): the model, defaults, kube-aggregator's validation
(the name is `version.group`, the priorities' ranges, a local service or a service reference) and the
columns of `kubectl get apiservices`.

Stored only: the emulator serves its built-in groups itself and proxies nothing to an extension API
server, so a registered APIService adds nothing to discovery. Its status says so: a local APIService
(no `spec.service`) is Available, one backed by a service is not (`FailedDiscoveryCheck`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource
from emulator.kinds.printing import AGE, NAME, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.values import Base64Bytes, GoDecodedObject, decode_base64, path_segment_errors
from emulator.models.base import Int32
from emulator.models.meta import ApiModel
from emulator.registry.strategy import Strategy
from emulator.timestamps import now_rfc3339

API_SERVICES = ResourceType(
    "apiregistration.k8s.io", "v1", "apiservices", "APIService", False, "apiservice", (), ("api-extensions",),
    subresources=(Subresource("status"),),
)
DEFAULT_SERVICE_PORT = 443
MAX_GROUP_PRIORITY = 20000
MAX_VERSION_PRIORITY = 1000
AVAILABLE = "Available"
LOCAL_MESSAGE = "Local APIServices are always available"
NOT_PROXIED_MESSAGE = "the emulator does not proxy requests to extension API servers"


class ServiceReference(ApiModel):
    namespace: str | None = None
    name: str | None = None
    port: Int32 | None = None


class APIServiceSpec(ApiModel):
    service: ServiceReference | None = None
    group: str | None = None
    version: str | None = None
    insecure_skip_tls_verify: bool | None = Field(default=None, alias="insecureSkipTLSVerify")
    ca_bundle: Base64Bytes = None
    group_priority_minimum: Int32 | None = None
    version_priority: Int32 | None = None


class APIService(GoDecodedObject):
    spec: APIServiceSpec = Field(default_factory=APIServiceSpec)
    status: Any = None


def _condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": AVAILABLE, "status": status, "lastTransitionTime": now_rfc3339(), "reason": reason, "message": message}


def availability(spec: dict[str, Any]) -> dict[str, Any]:
    """The Available condition kube-aggregator's availability controller would report, for what the emulator does."""
    if spec.get("service") is None:
        return _condition("True", "Local", LOCAL_MESSAGE)
    return _condition("False", "FailedDiscoveryCheck", NOT_PROXIED_MESSAGE)


def _skip_verify_invalid(detail: str) -> FieldError:
    # a bool shown as Go shows it
    return FieldError("spec.insecureSkipTLSVerify", "FieldValueInvalid", f"Invalid value: true: {detail}")


def validate_api_service(obj: dict[str, Any]) -> list[FieldError]:
    """ValidateAPIService (k8s.io/kube-aggregator/pkg/apis/apiregistration/validation)."""
    spec = obj["spec"]
    group, version = spec.get("group") or "", spec.get("version") or ""
    name = obj["metadata"].get("name") or ""
    required_name = f"{version}.{group}"
    problems: list[FieldError] = []
    name_errors = path_segment_errors(name)
    if not name_errors and name != required_name:
        name_errors = [f'must be `spec.version+"."+spec.group`: "{required_name}"']
    problems += [invalid("metadata.name", name, m) for m in name_errors]
    if not group and version != "v1":
        problems.append(FieldError("spec.group", "FieldValueRequired", "Required value: only v1 may have an empty group and it better be legacy kube"))
    if group:
        problems += [invalid("spec.group", group, m) for m in validation.dns1123_subdomain_errors(group)]
    problems += [invalid("spec.version", version, m) for m in validation.dns1035_label_errors(version)]
    group_priority = spec.get("groupPriorityMinimum") or 0
    if not 0 < group_priority <= MAX_GROUP_PRIORITY:
        problems.append(invalid("spec.groupPriorityMinimum", group_priority, f"must be positive and less than {MAX_GROUP_PRIORITY}"))
    version_priority = spec.get("versionPriority") or 0
    if not 0 < version_priority <= MAX_VERSION_PRIORITY:
        problems.append(invalid("spec.versionPriority", version_priority, f"must be positive and less than {MAX_VERSION_PRIORITY}"))
    ca_bytes = len(decode_base64(spec.get("caBundle") or ""))
    skip_verify = bool(spec.get("insecureSkipTLSVerify"))
    service = spec.get("service")
    if service is None:
        if ca_bytes:
            problems.append(invalid("spec.caBundle", f"{ca_bytes} bytes", "local APIServices may not have a caBundle"))
        if skip_verify:
            problems.append(_skip_verify_invalid("local APIServices may not have insecureSkipTLSVerify"))
        return problems
    for field in ("namespace", "name"):
        if not service.get(field):
            problems.append(errors.required(f"spec.service.{field}"))
    port = service.get("port")
    port_errors = validation.port_number_errors(port) if port is not None else []
    if port_errors:
        problems.append(invalid("spec.service.port", port, "port is not valid: " + ", ".join(port_errors)))
    if skip_verify and ca_bytes:
        problems.append(_skip_verify_invalid("may not be true if caBundle is present"))
    return problems


class APIServiceStrategy(Strategy):
    resource = API_SERVICES
    model = APIService
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        service = obj["spec"].get("service")
        if service is not None:
            service.setdefault("port", DEFAULT_SERVICE_PORT)
        obj["status"] = {"conditions": [availability(obj["spec"])]}

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        service = new["spec"].get("service")
        if service is not None:
            service.setdefault("port", DEFAULT_SERVICE_PORT)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        return validate_api_service(obj)


def _available(conditions: list[dict[str, Any]]) -> str:
    for condition in conditions:
        if condition.get("type") == AVAILABLE:
            status = condition.get("status") or ""
            return status if status == "True" else f"{status} ({condition.get('reason') or ''})"
    return "Unknown"


def _api_service_cells(svc: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(svc, now)
    ref = spec_of(svc).get("service")
    service = "Local" if ref is None else f"{ref.get('namespace') or ''}/{ref.get('name') or ''}"
    return [name, service, _available(status_of(svc).get("conditions") or []), created]


PRINTER = Printer(
    (
        NAME,
        Column("Service", "The reference to the service that hosts this API endpoint."),
        Column("Available", "Whether this service is available."),
        AGE,
    ),
    _api_service_cells,
)


KIND = Kind(API_SERVICES, APIServiceStrategy, PRINTER)
