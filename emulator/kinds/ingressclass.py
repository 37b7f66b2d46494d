"""IngressClass (networking.k8s.io/v1, cluster-scoped): the model, defaults, the API server's validation
(a domain-prefixed controller that never changes, the parameters reference) and the columns of
`kubectl get ingressclass`.

The emulator's own class, `emulator` (controller `emulator.local/ingress`), is written at start and marked
as the default: Ingresses created without a class get it (emulator/kinds/ingress.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import Field

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.printing import AGE, NAME, NONE, Column, Printer, name_age, spec_of
from emulator.kinds.values import path_segment_errors
from emulator.models.meta import ApiModel, TypedObject
from emulator.registry.strategy import Strategy

INGRESS_CLASSES = ResourceType("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False, "ingressclass")
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
EMULATOR_CLASS = "emulator"
EMULATOR_CONTROLLER = "emulator.local/ingress"
MAX_CONTROLLER_LENGTH = 250
PARAMETER_SCOPES = ("Cluster", "Namespace")
HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE = re.compile(HTTP_PATH_FMT)


class IngressClassParametersReference(ApiModel):
    api_group: str | None = None
    kind: str | None = None
    name: str | None = None
    scope: str | None = None
    namespace: str | None = None


class IngressClassSpec(ApiModel):
    controller: str | None = None
    parameters: IngressClassParametersReference | None = None


class IngressClass(TypedObject):
    spec: IngressClassSpec = Field(default_factory=IngressClassSpec)


def validate_typed_reference(ref: dict[str, Any], path: str) -> list[FieldError]:
    """validateIngressTypedLocalObjectReference: a resource backend or a class's parameters."""
    problems: list[FieldError] = []
    group = ref.get("apiGroup")
    if group is not None:
        problems += [invalid(f"{path}.apiGroup", group, m) for m in validation.dns1123_subdomain_errors(group)]
    for field in ("kind", "name"):
        value = ref.get(field) or ""
        if not value:
            problems.append(FieldError(f"{path}.{field}", "FieldValueRequired", f"Required value: {field} is required"))
        else:
            problems += [invalid(f"{path}.{field}", value, m) for m in path_segment_errors(value)]
    return problems


def _validate_controller(controller: str) -> list[FieldError]:
    """The length limit and IsDomainPrefixedPath."""
    path = "spec.controller"
    problems: list[FieldError] = []
    if len(controller) > MAX_CONTROLLER_LENGTH:
        problems.append(validation.too_long(path, MAX_CONTROLLER_LENGTH))
    if not controller:
        return [*problems, errors.required(path)]
    host, slash, rest = controller.partition("/")
    if not slash or not host or not rest:
        return [*problems, invalid(path, controller, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    problems += [invalid(path, host, m) for m in validation.dns1123_subdomain_errors(host)]
    if not _HTTP_PATH_RE.fullmatch(rest):
        problems.append(invalid(path, rest, validation.regex_error("must be a valid path", HTTP_PATH_FMT)))
    return problems


def _validate_parameters(params: dict[str, Any] | None) -> list[FieldError]:
    if params is None:
        return []
    path = "spec.parameters"
    problems = validate_typed_reference(params, path)
    scope = params.get("scope")
    if scope is None:
        return [*problems, errors.required(f"{path}.scope")]
    if scope not in PARAMETER_SCOPES:
        return [*problems, errors.not_supported(f"{path}.scope", scope, list(PARAMETER_SCOPES))]
    namespace = params.get("namespace")
    if scope == "Namespace":
        if namespace is None:
            problems.append(FieldError(f"{path}.namespace", "FieldValueRequired", "Required value: `parameters.scope` is set to 'Namespace'"))
        else:
            problems += [invalid(f"{path}.namespace", namespace, m) for m in validation.dns1123_label_errors(namespace)]
    elif namespace is not None:
        problems.append(errors.forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return problems


class IngressClassStrategy(Strategy):
    resource = INGRESS_CLASSES
    model = IngressClass

    def prepare_create(self, obj: dict[str, Any]) -> None:
        params = obj["spec"].get("parameters")
        if params is not None:
            params.setdefault("scope", "Cluster")

    def prepare_update(self, new: dict[str, Any], old: dict[str, Any]) -> None:
        self.prepare_create(new)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        return _validate_controller(spec.get("controller") or "") + _validate_parameters(spec.get("parameters"))

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
        controller = new["spec"].get("controller") or ""
        if controller != (old["spec"].get("controller") or ""):
            return [invalid("spec.controller", controller, "field is immutable")]
        return []


def is_default_class(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"


def _ingress_class_cells(ic: dict[str, Any], now: datetime) -> list[Any]:
    # 1.32 prints no "(default)" marker after the name (1.33 does)
    name, created = name_age(ic, now)
    spec = spec_of(ic)
    params = spec.get("parameters")
    parameters = NONE
    if params:
        parameters = params.get("kind") or ""
        if params.get("apiGroup") is not None:
            parameters += "." + params["apiGroup"]
        parameters += "/" + (params.get("name") or "")
    return [name, spec.get("controller") or "", parameters, created]


PRINTER = Printer(
    (
        NAME,
        Column("Controller", "Controller that is responsible for handling this class"),
        Column("Parameters", "A reference to a resource with additional parameters"),
        AGE,
    ),
    _ingress_class_cells,
)


KIND = Kind(INGRESS_CLASSES, IngressClassStrategy, PRINTER)
