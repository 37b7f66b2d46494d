"""Ingress (networking.k8s.io/v1): the model, the default class (what the DefaultIngressClass admission
plugin does), the API server's validation (rules, hosts, paths and path types, backends, TLS) and the
columns of `kubectl get ingress`.

Routed by the gateway when of the emulator's class (emulator/routing/ingress.py compiles them), whose
status controller (emulator/controllers/ingressstatus.py) writes the gateway's address as their load balancer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, model_validator

from emulator import errors, validation
from emulator.errors import FieldError, invalid
from emulator.kinds.base import Kind, ResourceType, Subresource, newest_default
from emulator.kinds.ingressclass import INGRESS_CLASSES, is_default_class, validate_typed_reference
from emulator.kinds.printing import AGE, NAME, NONE, Column, Printer, name_age, spec_of, status_of
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.models.base import GoType, Int32
from emulator.models.meta import ApiModel, TypedObject
from emulator.registry.strategy import Strategy

INGRESSES = ResourceType(
    "networking.k8s.io", "v1", "ingresses", "Ingress", True, "ingress", ("ing",),
    subresources=(Subresource("status"),),
)
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")  # sorted, as listed in errors
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
WILDCARD_FMT = "\\*\\." + validation.DNS1123_SUBDOMAIN_FMT
_WILDCARD_RE = re.compile(WILDCARD_FMT)
WILDCARD_ERR_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of "
    "lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character"
)


class ServiceBackendPort(ApiModel):
    name: str | None = None
    number: Int32 | None = None


class IngressServiceBackend(ApiModel):
    name: str | None = None
    port: ServiceBackendPort | None = None


class TypedLocalObjectReference(ApiModel):
    api_group: str | None = None
    kind: str | None = None
    name: str | None = None


class IngressBackend(ApiModel):
    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReference | None = None


class HTTPIngressPath(ApiModel):
    path: str | None = None
    path_type: Annotated[str, GoType("v1.PathType")] | None = None
    backend: IngressBackend = Field(default_factory=IngressBackend)


class HTTPIngressRuleValue(ApiModel):
    paths: list[HTTPIngressPath] | None = None


class IngressRule(ApiModel):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_protobuf(cls, data: Any) -> Any:
        # protobuf carries the inlined IngressRuleValue as a message of its own
        if isinstance(data, dict) and isinstance(data.get("ingressRuleValue"), dict):
            data = {k: v for k, v in data.items() if k != "ingressRuleValue"} | data["ingressRuleValue"]
        return data


class IngressTLS(ApiModel):
    hosts: list[str] | None = None
    secret_name: str | None = None


class IngressSpec(ApiModel):
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    tls: list[IngressTLS] | None = Field(default=None, alias="tls")
    rules: list[IngressRule] | None = None


class Ingress(TypedObject):
    spec: IngressSpec = Field(default_factory=IngressSpec)
    status: Any = None


def _wildcard_errors(host: str) -> list[str]:
    """IsWildcardDNS1123Subdomain."""
    errs: list[str] = []
    if len(host) > validation.DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(validation.max_len_error(validation.DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _WILDCARD_RE.fullmatch(host):
        errs.append(validation.regex_error(WILDCARD_ERR_MSG, WILDCARD_FMT, "*.example.com"))
    return errs


def _host_errors(host: str) -> list[str]:
    return _wildcard_errors(host) if "*" in host else validation.dns1123_subdomain_errors(host)


def _validate_backend(backend: dict[str, Any], path: str) -> list[FieldError]:
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return validate_typed_reference(resource, f"{path}.resource")
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    problems: list[FieldError] = []
    name = service.get("name") or ""
    if not name:
        problems.append(errors.required(f"{path}.service.name"))
    else:
        problems += [invalid(f"{path}.service.name", name, m) for m in validation.dns1035_label_errors(name)]
    port = service.get("port") or {}
    port_name, number = port.get("name") or "", port.get("number") or 0
    if port_name and number:
        problems.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        problems += [invalid(f"{path}.service.port.name", port_name, m) for m in validation.port_name_errors(port_name)]
    elif number:
        problems += [invalid(f"{path}.service.port.number", number, m) for m in validation.port_number_errors(number)]
    else:
        problems.append(FieldError(path, "FieldValueRequired", "Required value: port name or number is required"))
    return problems


def _validate_path(item: dict[str, Any], path: str) -> list[FieldError]:
    kind = item.get("pathType")
    if kind is None:
        return [FieldError(f"{path}.pathType", "FieldValueRequired", "Required value: pathType must be specified")]
    value = item.get("path") or ""
    problems: list[FieldError] = []
    if kind in ("Exact", "Prefix"):
        if not value.startswith("/"):
            problems.append(invalid(f"{path}.path", value, "must be an absolute path"))
        if value:
            problems += [invalid(f"{path}.path", value, f"must not contain '{s}'") for s in INVALID_PATH_SEQUENCES if s in value]
            problems += [invalid(f"{path}.path", value, f"cannot end with '{s}'") for s in INVALID_PATH_SUFFIXES if value.endswith(s)]
    elif kind == "ImplementationSpecific":
        if value and not value.startswith("/"):
            problems.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        problems.append(errors.not_supported(f"{path}.pathType", kind, list(PATH_TYPES)))
    return problems + _validate_backend(item.get("backend") or {}, f"{path}.backend")


def _validate_rules(rules: list[dict[str, Any]]) -> list[FieldError]:
    problems: list[FieldError] = []
    for i, rule in enumerate(rules):
        path = f"spec.rules[{i}]"
        host = rule.get("host") or ""
        if host:
            if validation.parse_ip(host) is not None:
                problems.append(invalid(f"{path}.host", host, "must be a DNS name, not an IP address"))
            problems += [invalid(f"{path}.host", host, m) for m in _host_errors(host)]
        http = rule.get("http")
        if http is not None:
            paths = http.get("paths") or []
            if not paths:
                problems.append(errors.required(f"{path}.http.paths"))
            for j, item in enumerate(paths):
                problems += _validate_path(item, f"{path}.http.paths[{j}]")
    return problems


def _validate_tls(tls: list[dict[str, Any]]) -> list[FieldError]:
    problems: list[FieldError] = []
    for i, item in enumerate(tls):
        for j, host in enumerate(item.get("hosts") or []):
            problems += [invalid(f"spec.tls[{i}].hosts[{j}]", host, m) for m in _host_errors(host)]
        secret = item.get("secretName") or ""
        if secret:
            problems += [invalid(f"spec.tls[{i}].secretName", secret, m) for m in validation.dns1123_subdomain_errors(secret)]
    return problems


class IngressStrategy(Strategy):
    resource = INGRESSES
    model = Ingress
    has_status = True

    def prepare_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"loadBalancer": {}}
        spec = obj["spec"]
        annotations = obj["metadata"].get("annotations") or {}
        if spec.get("ingressClassName") is None and CLASS_ANNOTATION not in annotations:
            default = self._default_class()
            if default is not None:
                spec["ingressClassName"] = default

    def _default_class(self) -> str | None:
        """The DefaultIngressClass admission plugin: the newest class marked default (by name on a tie)."""
        return newest_default(self.cluster.store.objects(INGRESS_CLASSES.key), is_default_class)

    def validate(self, obj: dict[str, Any]) -> list[FieldError]:
        spec = obj["spec"]
        problems: list[FieldError] = []
        rules = spec.get("rules") or []
        if not rules and spec.get("defaultBackend") is None:
            problems.append(FieldError("spec", "FieldValueInvalid", "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"))
        if spec.get("defaultBackend") is not None:
            problems += _validate_backend(spec["defaultBackend"], "spec.defaultBackend")
        problems += _validate_rules(rules) + _validate_tls(spec.get("tls") or [])
        name = spec.get("ingressClassName")
        if name is not None:
            problems += [invalid("spec.ingressClassName", name, m) for m in validation.dns1123_subdomain_errors(name)]
        annotation = (obj["metadata"].get("annotations") or {}).get(CLASS_ANNOTATION)
        if annotation is not None and name is not None and annotation != name:
            problems.append(invalid(f"annotations.{CLASS_ANNOTATION}", annotation, "must match `ingressClassName` when both are specified"))
        return problems


def format_hosts(rules: list[dict[str, Any]]) -> str:
    """formatHosts: the first three hosts the rules name ("*" when none does), then "+ N more..."."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    return f"{','.join(hosts)} + {len(rules) - 3} more..." if more else ",".join(hosts)


def _ingress_cells(ing: dict[str, Any], now: datetime) -> list[Any]:
    name, created = name_age(ing, now)
    spec = spec_of(ing)
    ingress = (status_of(ing).get("loadBalancer") or {}).get("ingress") or []
    addresses = sorted({i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")})
    return [
        name,
        spec.get("ingressClassName") or NONE,
        format_hosts(spec.get("rules") or []),
        ",".join(addresses),
        "80, 443" if spec.get("tls") else "80",
        created,
    ]


PRINTER = Printer(
    (
        NAME,
        Column("Class", "The name of the IngressClass resource that should be used for additional configuration"),
        Column("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        Column("Address", "Address is a list containing ingress points for the load-balancer"),
        Column("Ports", "Ports of TLS configurations that open"),
        AGE,
    ),
    _ingress_cells,
)


# `kubectl create ingress` sends protobuf (k8s.io/api networking/v1 generated.proto)
_TYPED_REFERENCE: Message = {1: ProtoField("apiGroup", "string", optional=True), 2: ProtoField("kind", "string"), 3: ProtoField("name", "string")}
_BACKEND: Message = {
    3: ProtoField("resource", "message", _TYPED_REFERENCE, optional=True),
    4: ProtoField("service", "message", {
        1: ProtoField("name", "string"),
        2: ProtoField("port", "message", {1: ProtoField("name", "string"), 2: ProtoField("number", "int")}),
    }, optional=True),
}
INGRESS_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {
        1: ProtoField("defaultBackend", "message", _BACKEND, optional=True),
        2: ProtoField("tls", "message", {1: ProtoField("hosts", "string", repeated=True), 2: ProtoField("secretName", "string")}, repeated=True),
        3: ProtoField("rules", "message", {
            1: ProtoField("host", "string"),
            2: ProtoField("ingressRuleValue", "message", inline=True, message={1: ProtoField("http", "message", {
                1: ProtoField("paths", "message", {
                    1: ProtoField("path", "string"),
                    2: ProtoField("backend", "message", _BACKEND),
                    3: ProtoField("pathType", "string", optional=True),
                }, repeated=True),
            }, optional=True)}),
        }, repeated=True),
        4: ProtoField("ingressClassName", "string", optional=True),
    }),
}


KIND = Kind(INGRESSES, IngressStrategy, PRINTER, protobuf={("networking.k8s.io/v1", "Ingress"): INGRESS_PROTOBUF})
