"""Names, labels, annotations, addresses and ports are validated with Kubernetes' rules and words."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from emulator.errors import StatusError, invalid_strings, not_found_value
from emulator.kinds.networkpolicy import NetworkPolicy
from emulator.kinds.pod import Pod
from emulator.kinds.service import Service
from emulator.models.base import field_errors, loc_path
from emulator.validation import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    dns_label_length_errors,
    ip_family,
    label_value_errors,
    parse_ip,
    qualified_name_errors,
    validate_annotations,
    validate_cidr,
    validate_ip,
    validate_labels,
    validate_non_special_ip,
    validate_port_name,
    validate_port_number,
)

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
    "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def test_dns1123_label_message_is_kubernetes_verbatim() -> None:
    assert dns1123_label_errors("My_Name") == [DNS1123_LABEL_MSG]


@pytest.mark.parametrize("value", ["a", "my-name", "123-abc", "0", "a" * 63])
def test_dns1123_label_valid(value: str) -> None:
    assert dns1123_label_errors(value) == []


@pytest.mark.parametrize("value", ["", "-a", "a-", "A", "a.b", "a_b", "a b", "a\n"])
def test_dns1123_label_invalid(value: str) -> None:
    assert dns1123_label_errors(value)


def test_dns1123_label_too_long() -> None:
    assert dns1123_label_errors("a" * 64) == ["must be no more than 63 characters"]


@pytest.mark.parametrize("value", ["example.com", "a", "a.b-c.d", "1.2.3"])
def test_dns1123_subdomain_valid(value: str) -> None:
    assert dns1123_subdomain_errors(value) == []


@pytest.mark.parametrize("value", ["", ".a", "a.", "a..b", "Example.com", "a_b"])
def test_dns1123_subdomain_invalid(value: str) -> None:
    (msg,) = dns1123_subdomain_errors(value)
    assert msg.startswith("a lowercase RFC 1123 subdomain must consist of")
    assert "(e.g. 'example.com', regex used" in msg


def test_dns1123_subdomain_length() -> None:
    name = ".".join(["a" * 63] * 4)  # 255 characters
    assert dns1123_subdomain_errors(name) == ["must be no more than 253 characters"]


@pytest.mark.parametrize(
    ("value", "ok"), [("my-name", True), ("abc-123", True), ("1abc", False), ("a-", False), ("", False)]
)
def test_dns1035_label(value: str, ok: bool) -> None:
    errs = dns1035_label_errors(value)
    assert (errs == []) is ok
    if not ok:
        assert errs[-1].startswith(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with"
        )


@pytest.mark.parametrize(
    "value",
    ["app", "App.Name_1", "example.com/MyName", "kubernetes.io/metadata.name", "a" * 63, "x/" + "a" * 63],
)
def test_qualified_name_valid(value: str) -> None:
    assert qualified_name_errors(value) == []


@pytest.mark.parametrize(
    ("value", "starts"),
    [
        ("", ["name part must be non-empty", "name part must consist of"]),
        ("/a", ["prefix part must be non-empty"]),
        ("Example.com/a", ["prefix part a lowercase RFC 1123 subdomain"]),
        ("a/", ["name part must be non-empty", "name part must consist of"]),
        ("a/b/c", ["a qualified name must consist of"]),
        ("-a", ["name part must consist of"]),
        ("a" * 64, ["name part must be no more than 63 characters"]),
    ],
)
def test_qualified_name_invalid(value: str, starts: list[str]) -> None:
    errs = qualified_name_errors(value)
    assert len(errs) == len(starts)
    for msg, start in zip(errs, starts, strict=True):
        assert msg.startswith(start), msg


def test_qualified_name_three_parts_mentions_prefix_form() -> None:
    (msg,) = qualified_name_errors("a/b/c")
    assert msg.endswith("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")


@pytest.mark.parametrize(
    ("value", "ok"), [("", True), ("v1", True), ("My_Value.1", True), ("-x", False), ("a b", False), ("a" * 64, False)]
)
def test_label_value(value: str, ok: bool) -> None:
    assert (label_value_errors(value) == []) is ok


def test_validate_labels_reports_the_map_path() -> None:
    errs = validate_labels({"ok": "yes", "bad key": "v", "k": "bad value!"}, "metadata.labels")
    assert [e.field for e in errs] == ["metadata.labels", "metadata.labels"]
    assert errs[0].message.startswith('Invalid value: "bad key": name part must consist of')
    assert errs[1].message.startswith('Invalid value: "bad value!": a valid label must be')
    assert all(e.reason == "FieldValueInvalid" for e in errs)


def test_validate_labels_absent_and_wrong_types() -> None:
    assert validate_labels(None, "metadata.labels") == []
    assert validate_labels({}, "metadata.labels") == []
    assert len(validate_labels(["a"], "metadata.labels")) == 1
    assert len(validate_labels({"a": 1}, "metadata.labels")) == 1


def test_validate_annotations_keys_case_insensitive_and_values_free() -> None:
    assert validate_annotations({"Example.COM/Key": "any value at all, even spaces!"}, "metadata.annotations") == []
    (err,) = validate_annotations({"bad key": "v"}, "metadata.annotations")
    assert err.field == "metadata.annotations"


def test_validate_annotations_total_size() -> None:
    at_limit = {"k": "x" * (TOTAL_ANNOTATION_SIZE_LIMIT_B - 1)}
    assert validate_annotations(at_limit, "metadata.annotations") == []
    (err,) = validate_annotations({"k": "x" * TOTAL_ANNOTATION_SIZE_LIMIT_B}, "metadata.annotations")
    assert err.reason == "FieldValueTooLong"
    assert err.message == "Too long: may not be more than 262144 bytes"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10.0.0.1", True),
        ("::1", True),
        ("2001:db8::ffff", True),
        ("1.2.3", False),
        ("010.0.0.1", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
    ],
)
def test_validate_ip(value: object, ok: bool) -> None:
    errs = validate_ip(value, "spec.clusterIP")
    assert (errs == []) is ok
    if not ok:
        assert errs[0].message.endswith("must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("10.0.0.0/8", True),
        ("10.0.0.1/24", True),
        ("2001:db8::/64", True),
        ("10.0.0.1", False),
        ("10.0.0.0/33", False),
        ("x/8", False),
    ],
)
def test_validate_cidr(value: str, ok: bool) -> None:
    errs = validate_cidr(value, "spec.ipBlock.cidr")
    assert (errs == []) is ok
    if not ok:
        assert errs[0].message.endswith("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")


@pytest.mark.parametrize(
    ("value", "ok"), [(1, True), (65535, True), (0, False), (65536, False), (-1, False), (True, False), ("80", False)]
)
def test_validate_port_number(value: object, ok: bool) -> None:
    errs = validate_port_number(value, "spec.ports[0].port")
    assert (errs == []) is ok
    if not ok:
        assert errs[0].message.endswith("must be between 1 and 65535, inclusive")


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        ("http", []),
        ("http-alt2", []),
        ("a" * 15, []),
        ("a" * 16, ["must be no more than 15 characters"]),
        (
            "HTTP",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        ),
        ("8080", ["must contain at least one letter (a-z)"]),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("-ab", ["must not begin or end with a hyphen"]),
        ("ab-", ["must not begin or end with a hyphen"]),
        ("a_b", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
    ],
)
def test_validate_port_name(value: str, messages: list[str]) -> None:
    errs = validate_port_name(value, "spec.ports[0].name")
    assert [e.message.split(": ", 2)[2] for e in errs] == messages


# -- addresses a service may not use: ValidateNonSpecialIP ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "allow_loopback", "details"),
    [
        ("10.0.0.1", False, []),
        ("2001:db8::1", False, []),
        ("239.1.1.1", False, []),  # multicast outside the link-local block is allowed, as in Kubernetes
        ("ff05::1", False, []),
        ("0.0.0.0", False, ["may not be unspecified (0.0.0.0)"]),
        ("::", False, ["may not be unspecified (::)"]),
        ("127.0.0.1", False, ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]),
        ("::1", False, ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]),
        ("127.0.0.1", True, []),
        ("::1", True, []),
        ("169.254.169.254", False, ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]),
        ("fe80::1", False, ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]),
        ("::ffff:169.254.1.1", False, ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]),
        ("224.0.0.251", False, ["may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]),
        ("ff02::fb", False, ["may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]),
        ("nope", False, ["must be a valid IP address"]),
    ],
)
def test_validate_non_special_ip(value: str, allow_loopback: bool, details: list[str]) -> None:
    errs = validate_non_special_ip(value, "spec.externalIPs[0]", allow_loopback=allow_loopback)
    assert [e.message for e in errs] == [f'Invalid value: "{value}": {d}' for d in details]
    assert {(e.field, e.reason) for e in errs} <= {("spec.externalIPs[0]", "FieldValueInvalid")}


@pytest.mark.parametrize(
    ("value", "family"),
    [("10.0.0.1", "IPv4"), ("fd00::1", "IPv6"), ("::ffff:10.0.0.1", "IPv4"), ("x", None), (None, None)],
)
def test_ip_family(value: object, family: str | None) -> None:
    assert ip_family(value) == family


@pytest.mark.parametrize(
    ("name", "ok"),
    [("example.com", True), ("a" * 63 + ".example.com", True), ("a" * 64 + ".example.com", False), ("x." + "b" * 64, False)],
)
def test_dns_label_length(name: str, ok: bool) -> None:
    assert (dns_label_length_errors(name) == []) is ok
    if not ok:
        assert dns_label_length_errors(name) == ["must be a valid DNS name: each label must be no more than 63 characters"]


def test_go_formatted_causes() -> None:
    cause = invalid_strings("spec.clusterIPs", ["10.0.0.1", "10.0.0.2"], "may specify no more than one IP for each IP family")
    assert cause.message == 'Invalid value: []string{"10.0.0.1", "10.0.0.2"}: may specify no more than one IP for each IP family'
    missing = not_found_value("spec.containers[0].volumeMounts[0].name", "x")
    assert (missing.reason, missing.message) == ("FieldValueNotFound", 'Not found: "x"')


# -- JSON types: the API server's decoder refuses what does not fit (400), the rest is validation (422) ----

KIND_OF = {"Pod": Pod, "Service": Service, "NetworkPolicy": NetworkPolicy}
PODSPEC = {"containers": [{"name": "a"}]}


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        (
            "Service", {"spec": {"ports": [{"port": "80"}]}},
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32",
        ),
        (
            "Pod", {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}},
            "json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
        ),
        (
            "Pod", {"spec": {**PODSPEC, "hostNetwork": "yes"}},
            "json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool",
        ),
        (
            "Pod", {"spec": {**PODSPEC, "terminationGracePeriodSeconds": "30"}},
            "json: cannot unmarshal string into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64",
        ),
        (
            "Service", {"spec": {"ports": [{"port": 1.5}]}},
            "json: cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.port of type int32",
        ),
        (
            "Service", {"spec": {"ports": [{"port": 2**31}]}},
            "json: cannot unmarshal number 2147483648 into Go struct field ServicePort.spec.ports.port of type int32",
        ),
        (  # IntOrString decodes itself: Go names no struct field
            "Service", {"spec": {"ports": [{"port": 80, "targetPort": True}]}},
            "json: cannot unmarshal bool into Go value of type int32",
        ),
        (
            "Service", {"spec": {"ports": "80"}},
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort",
        ),
        (
            "Service", {"spec": {"ports": ["80"]}},
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.ports of type v1.ServicePort",
        ),
        ("Service", {"spec": []}, "json: cannot unmarshal array into Go struct field Service.spec of type v1.ServiceSpec"),
        (
            "Service", {"metadata": {"labels": {"version": 2}}},
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
        ),
        (
            "Service", {"spec": {"type": 1}},
            "json: cannot unmarshal number into Go struct field ServiceSpec.spec.type of type v1.ServiceType",
        ),
        (
            "Service", {"spec": {"ipFamilies": [4]}},
            "json: cannot unmarshal number into Go struct field ServiceSpec.spec.ipFamilies of type v1.IPFamily",
        ),
        (
            "Pod", {"spec": {"containers": [{"name": "a", "env": [{"name": "N", "value": 8080}]}]}},
            "json: cannot unmarshal number into Go struct field EnvVar.spec.containers.env.value of type string",
        ),
        (  # the first mismatch in the body, as Go's decoder reads it
            "Pod", {"spec": {"hostNetwork": 1, "containers": [{"name": 7}]}},
            "json: cannot unmarshal number into Go struct field PodSpec.spec.hostNetwork of type bool",
        ),
        (
            "NetworkPolicy", {"apiVersion": "networking.k8s.io/v1", "spec": {"ingress": [{"ports": [{"endPort": "9"}]}]}},
            "json: cannot unmarshal string into Go struct field NetworkPolicyPort.spec.ingress.ports.endPort of type int32",
        ),
    ],
)
def test_wrong_json_types_are_the_decoders_400(kind: str, body: dict[str, Any], message: str) -> None:
    with pytest.raises(StatusError) as caught:
        KIND_OF[kind].model_validate(body)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == f'{kind} in version "v1" cannot be handled as a {kind}: {message}'


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("Service", {"spec": {"ports": [{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 8081}]}}),
        ("Service", {"spec": {"ports": [{"port": 80}], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}}),
        ("Pod", {"spec": {**PODSPEC, "hostNetwork": True, "terminationGracePeriodSeconds": 0}}),
        ("Pod", {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": 1}}, "readinessProbe": {"x": "y"}}]}}),
        ("NetworkPolicy", {"spec": {"ingress": [{"ports": [{"port": "http"}, {"port": 80, "endPort": 90}]}]}}),
    ],
)
def test_right_json_types_decode(kind: str, body: dict[str, Any]) -> None:
    KIND_OF[kind].model_validate(body)  # int-or-string fields take both; `Any` fields stay free


@pytest.mark.parametrize(
    ("kind", "body", "causes"),
    [
        (
            "Service", {"spec": {"type": "Balanced", "ports": [{"port": 80}]}},
            [("spec.type", "FieldValueNotSupported",
              'Unsupported value: "Balanced": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')],
        ),
        (
            "Service", {"spec": {"ports": [{"port": 80, "protocol": "ICMP"}]}},
            [("spec.ports[0].protocol", "FieldValueNotSupported", 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"')],
        ),
        (
            "Pod", {"spec": {**PODSPEC, "restartPolicy": "Sometimes"}},
            [("spec.restartPolicy", "FieldValueNotSupported",
              'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')],
        ),
        ("Service", {"spec": {"ports": [{"name": "a"}]}}, [("spec.ports[0].port", "FieldValueRequired", "Required value")]),
    ],
)
def test_values_that_decode_but_break_a_rule_are_422_causes(kind: str, body: dict[str, Any], causes: list[tuple[str, str, str]]) -> None:
    with pytest.raises(ValidationError) as caught:
        KIND_OF[kind].model_validate(body)
    assert [(c.field, c.reason, c.message) for c in field_errors(caught.value)] == causes


def test_internal_traffic_policy_is_not_mistaken_for_a_union_tag() -> None:
    # "internalTrafficPolicy" starts with "int": the path must keep it
    assert loc_path(("spec", "internalTrafficPolicy")) == "spec.internalTrafficPolicy"
    assert loc_path(("spec", "ports", 0, "targetPort", "int")) == "spec.ports[0].targetPort"


@pytest.mark.parametrize("value", [
    "1.2.3.4", "0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3", "1.2.3.4.5", "1..3.4",
    "a.b.c.d", " 1.2.3.4", "1.2.3.4 ", "\uff11.2.3.4", "::1", "fe80::1%eth0", "10.0.0.1/24", "",
])
def test_the_fast_ipv4_check_agrees_with_the_full_parse(value: str) -> None:
    assert (validate_ip(value, "ip") == []) == (parse_ip(value) is not None)
