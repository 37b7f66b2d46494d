"""Name, label, annotation, address and port validation with Kubernetes apimachinery's rules and wording.

Two layers, as in apimachinery:
- `*_errors(value) -> list[str]`: the messages of `k8s.io/apimachinery/pkg/util/validation` (IsDNS1123Label,
  IsQualifiedName, ...). Empty list = valid. Callers prefix them or wrap them in a FieldError.
- `validate_*(value, path) -> list[FieldError]`: ready-made causes for a 422 Invalid Status, with the
  field paths Kubernetes reports (for labels and annotations the path is the map itself,
  e.g. `metadata.labels`, not the key — kubectl users see exactly that).

The wording is copied from the Kubernetes messages on purpose: people paste them into search engines.
Every regex is compiled once at import; these checks run on every write.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Mapping
from typing import Any

from emulator.errors import FieldError, invalid

# what apimachinery's SimpleNameGenerator appends to `generateName` (and the API server to the names it makes
# up: kube-api-access-*): no vowels, no look-alikes
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(random.choices(GENERATE_ALPHABET, k=length))


# --- the formats, spelt as in apimachinery so the messages show the same regex text ----------------

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_LABEL_ERR_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)

DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1123_SUBDOMAIN_ERR_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)

DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MAX_LENGTH = 63
DNS1035_LABEL_ERR_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)

QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MAX_LENGTH = 63
QUALIFIED_NAME_ERR_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)

LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MAX_LENGTH = 63
LABEL_VALUE_ERR_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)

TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024

PORT_NAME_MAX_LENGTH = 15

# fullmatch, not match: the Go code anchors with ^...$
_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_ONE_LETTER_RE = re.compile("[a-z]")


# --- message builders (apimachinery's EmptyError, MaxLenError, RegexError) ------------------------


def empty_error() -> str:
    return "must be non-empty"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    # Reproduces Go's RegexError byte for byte, including its odd "'my-name',  or" double space.
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


# --- list[str] checks ------------------------------------------------------------------------------


def dns1123_label_errors(value: str) -> list[str]:
    """IsDNS1123Label: names of namespaces, services (as DNS labels), ports' DNS parts, ..."""
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        errs.append(regex_error(DNS1123_LABEL_ERR_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    """IsDNS1123Subdomain: names of most objects (pods, configmaps, ...)."""
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_ERR_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    """IsDNS1035Label: service names (they become DNS labels and env var prefixes, so no leading digit)."""
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(regex_error(DNS1035_LABEL_ERR_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """IsQualifiedName: label and annotation keys, `[prefix/]name` with a DNS-subdomain prefix."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + empty_error())
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + empty_error())
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX_LENGTH))
    if not _QUALIFIED_NAME_RE.fullmatch(name):
        errs.append(
            "name part " + regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """IsValidLabelValue: empty is allowed."""
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(regex_error(LABEL_VALUE_ERR_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def port_number_errors(value: int) -> list[str]:
    """IsValidPortNum."""
    if 1 <= value <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def port_name_errors(value: str) -> list[str]:
    """IsValidPortName (IANA_SVC_NAME, RFC 6335): what service, container and policy port names must be."""
    errs: list[str] = []
    if len(value) > PORT_NAME_MAX_LENGTH:
        errs.append(max_len_error(PORT_NAME_MAX_LENGTH))
    if not _PORT_NAME_CHARSET_RE.fullmatch(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_ONE_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


ENV_VAR_NAME_ERR_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"
_ENV_VAR_NAME_RE = re.compile(r"[ -<>-~]+")  # printable ASCII (0x20-0x7E) without '=' (0x3D)


def env_var_name_errors(value: str) -> list[str]:
    """IsEnvVarName as Kubernetes 1.32 checks it (RelaxedEnvironmentVariableValidation, on by default)."""
    if not value:
        return [empty_error()]
    if not _ENV_VAR_NAME_RE.fullmatch(value):
        return [ENV_VAR_NAME_ERR_MSG]
    return []


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL_RE.fullmatch(value) is not None


def is_qualified_name(value: str) -> bool:
    return not qualified_name_errors(value)


def is_label_value(value: str) -> bool:
    return len(value) <= LABEL_VALUE_MAX_LENGTH and _LABEL_VALUE_RE.fullmatch(value) is not None


# --- FieldError producers --------------------------------------------------------------------------


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    """ValidateLabels: every key a qualified name, every value a label value. `None` (absent) is valid."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [invalid(path, labels, "must be a map of string keys to string values")]
    errs: list[FieldError] = []
    for key, value in labels.items():
        if not isinstance(key, str):
            errs.append(invalid(path, key, "label keys must be strings"))
            continue
        errs.extend(invalid(path, key, m) for m in qualified_name_errors(key))
        if not isinstance(value, str):
            errs.append(invalid(path, value, "label values must be strings"))
            continue
        errs.extend(invalid(path, value, m) for m in label_value_errors(value))
    return errs


def validate_annotations(annotations: Any, path: str) -> list[FieldError]:
    """ValidateAnnotations: keys are qualified names (case-insensitively); keys + values ≤ 256 KiB in total."""
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [invalid(path, annotations, "must be a map of string keys to string values")]
    errs: list[FieldError] = []
    total = 0
    for key, value in annotations.items():
        if not isinstance(key, str):
            errs.append(invalid(path, key, "annotation keys must be strings"))
            continue
        # Kubernetes lower-cases first: annotation keys may contain capitals in the prefix too.
        errs.extend(invalid(path, key, m) for m in qualified_name_errors(key.lower()))
        if not isinstance(value, str):
            errs.append(invalid(path, value, "annotation values must be strings"))
            continue
        # Kubernetes counts Go string length, i.e. UTF-8 bytes.
        total += len(key.encode()) + len(value.encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_B))
    return errs


def parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, or None when `value` is not an IP literal (no zone suffixes, no leading zeros)."""
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network, or None. Host bits may be set (`10.0.0.1/24`), as Go's ParseCIDR allows; a prefix is required."""
    if not isinstance(value, str) or "/" not in value or "%" in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _plain_ipv4(value: str) -> bool:
    """A dotted quad without leading zeros: what nearly every address is, checked without `ipaddress`
    (a 1,000-address Endpoints is validated on every change)."""
    parts = value.split(".")
    return len(parts) == 4 and all(
        0 < len(p) <= 3 and p.isdigit() and p.isascii() and (p == "0" or p[0] != "0") and int(p) <= 255 for p in parts
    )


def validate_ip(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str) and _plain_ipv4(value):
        return []
    if parse_ip(value) is None:
        return [invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def ip_family(value: Any) -> str | None:
    """"IPv4" or "IPv6" (an IPv4-mapped IPv6 address is IPv4, as Go sees it), None for no IP literal."""
    ip = parse_ip(value)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return "IPv6"
    return "IPv4"


def validate_non_special_ip(value: Any, path: str, allow_loopback: bool = False) -> list[FieldError]:
    """ValidateNonSpecialIP (externalIPs, endpoint addresses): no unspecified, loopback, link-local or
    link-local multicast address, in Go's net.IP sense (an IPv4-mapped IPv6 address counts as IPv4).

    `allow_loopback`: the emulator's own addresses are all in 127.0.0.0/8, so its services may use them."""
    ip = parse_ip(value)
    if ip is None:
        return [invalid(path, value, "must be a valid IP address")]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    errs: list[FieldError] = []
    if ip.is_unspecified:
        errs.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_loopback and not allow_loopback:
        errs.append(invalid(path, value, "may not be in the loopback range (127.0.0.0/8, ::1/128)"))
    if ip in _LINK_LOCAL_V4 or ip in _LINK_LOCAL_V6:
        errs.append(invalid(path, value, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"))
    packed = ip.packed
    link_local_multicast = ip in _LINK_LOCAL_MULTICAST_V4 or (ip.version == 6 and packed[0] == 0xFF and packed[1] & 0x0F == 0x02)
    if link_local_multicast:
        errs.append(invalid(path, value, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"))
    return errs


_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")
_LINK_LOCAL_V6 = ipaddress.IPv6Network("fe80::/10")
_LINK_LOCAL_MULTICAST_V4 = ipaddress.IPv4Network("224.0.0.0/24")


def dns_label_length_errors(name: str) -> list[str]:
    """Labels a DNS message cannot carry: each label of a name is at most 63 characters (RFC 1035),
    which IsDNS1123Subdomain does not check (it limits the whole name to 253)."""
    if any(len(label) > DNS1123_LABEL_MAX_LENGTH for label in name.split(".")):
        return [f"must be a valid DNS name: each label {max_len_error(DNS1123_LABEL_MAX_LENGTH)}"]
    return []


def validate_cidr(value: Any, path: str) -> list[FieldError]:
    if parse_cidr(value) is None:
        return [invalid(path, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return []


def validate_port_number(value: Any, path: str) -> list[FieldError]:
    # bool is an int in Python; JSON `true` is no port.
    if not isinstance(value, int) or isinstance(value, bool):
        return [invalid(path, value, inclusive_range_error(1, 65535))]
    return [invalid(path, value, m) for m in port_number_errors(value)]


def validate_port_name(value: Any, path: str) -> list[FieldError]:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return [invalid(path, value, m) for m in port_name_errors(value)]
