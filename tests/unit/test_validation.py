"""Names, labels, annotations, addresses and ports are validated with Kubernetes' rules and words."""

from __future__ import annotations

import pytest

from emulator.validation import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
    validate_annotations,
    validate_cidr,
    validate_ip,
    validate_labels,
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
