"""NetworkPolicy validation, as the API server's (pkg/apis/networking/validation): the field errors a
policy's spec gets before it is stored. The decision itself is semantics.py's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emulator.errors import FieldError, forbidden, invalid, not_supported, required
from emulator.labels import validate_label_selector
from emulator.validation import (
    parse_cidr,
    port_name_errors,
    port_number_errors,
    validate_cidr,
)

INGRESS = "Ingress"
EGRESS = "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")


def validate_network_policy(obj: Mapping[str, Any]) -> list[FieldError]:
    """ValidateNetworkPolicySpec: causes for a 422. Checks `spec` only; metadata is the registry's job."""
    spec = obj.get("spec")
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        return [invalid("spec", spec, "must be an object")]
    errs = validate_label_selector(spec.get("podSelector"), "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(direction)
        if rules is None:
            continue
        if not isinstance(rules, list):
            errs.append(invalid(f"spec.{direction}", rules, "must be a list"))
            continue
        for i, rule in enumerate(rules):
            at = f"spec.{direction}[{i}]"
            if rule is None:
                continue
            if not isinstance(rule, Mapping):
                errs.append(invalid(at, rule, "must be an object"))
                continue
            for j, port in enumerate(_as_list(rule.get("ports"), f"{at}.ports", errs)):
                errs += _validate_port(port, f"{at}.ports[{j}]")
            for j, peer in enumerate(_as_list(rule.get(peers_key), f"{at}.{peers_key}", errs)):
                errs += _validate_peer(peer, f"{at}.{peers_key}[{j}]")
    types = spec.get("policyTypes")
    if types is not None:
        if not isinstance(types, list):
            errs.append(invalid("spec.policyTypes", types, "must be a list"))
        elif len(types) > 2:
            errs.append(invalid("spec.policyTypes", types, "may not specify more than two policyTypes"))
        else:
            for i, t in enumerate(types):
                if t not in (INGRESS, EGRESS):
                    errs.append(not_supported(f"spec.policyTypes[{i}]", t, [INGRESS, EGRESS]))
    return errs


def _as_list(value: Any, path: str, errs: list[FieldError]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        errs.append(invalid(path, value, "must be a list"))
        return []
    return value


def _validate_port(port: Any, path: str) -> list[FieldError]:
    if not isinstance(port, Mapping):
        return [invalid(path, port, "must be an object")]
    errs: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, list(PROTOCOLS)))
    number, end = port.get("port"), port.get("endPort")
    if end is not None and (not isinstance(end, int) or isinstance(end, bool)):
        return [*errs, invalid(f"{path}.endPort", end, "must be an integer")]
    if number is None:
        if end is not None:
            errs.append(invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified"))
    elif isinstance(number, int) and not isinstance(number, bool):
        errs += [invalid(f"{path}.port", number, m) for m in port_number_errors(number)]
        if end is not None:
            if end < number:
                errs.append(invalid(f"{path}.endPort", number, "must be greater than or equal to `port`"))
            errs += [invalid(f"{path}.endPort", end, m) for m in port_number_errors(end)]
    elif isinstance(number, str):
        if end is not None:
            errs.append(invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric"))
        errs += [invalid(f"{path}.port", number, m) for m in port_name_errors(number)]
    else:
        errs.append(invalid(f"{path}.port", number, "must be a port number or a port name"))
    return errs


def _validate_peer(peer: Any, path: str) -> list[FieldError]:
    if not isinstance(peer, Mapping):
        return [invalid(path, peer, "must be an object")]
    errs: list[FieldError] = []
    count = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            count += 1
            errs += validate_label_selector(peer[key], f"{path}.{key}")
    block = peer.get("ipBlock")
    if block is not None:
        count += 1
        errs += _validate_ip_block(block, f"{path}.ipBlock")
    if count == 0:
        errs.append(FieldError(path, "FieldValueRequired", "Required value: must specify a peer"))
    elif count > 1 and block is not None:
        errs.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errs


def _validate_ip_block(block: Any, path: str) -> list[FieldError]:
    if not isinstance(block, Mapping):
        return [invalid(path, block, "must be an object")]
    text = block.get("cidr")
    if not text:
        return [required(f"{path}.cidr")]
    errs = validate_cidr(text, f"{path}.cidr")
    cidr = parse_cidr(text)
    if cidr is None:
        return errs
    for i, except_text in enumerate(_as_list(block.get("except"), f"{path}.except", errs)):
        at = f"{path}.except[{i}]"
        inner_errs = validate_cidr(except_text, at)
        errs += inner_errs
        inner = parse_cidr(except_text)
        if inner is None:
            continue
        # Kubernetes: the except's address must lie in cidr and its prefix must be strictly longer.
        if inner.version != cidr.version or inner.network_address not in cidr or inner.prefixlen <= cidr.prefixlen:
            errs.append(invalid(at, except_text, "must be a strict subset of `cidr`"))
    return errs
