"""Values that several kinds decode as the API server's Go types do, and the resource names they share.

- `resource.Quantity` ("500m", "1Gi", "2e3"): parsed with apimachinery's grammar and rounding, compared
  exactly, and stored in the canonical form the API server writes back ("1024Mi" is stored as "1Gi",
  "0.5" as "500m"). A value that is no quantity is refused while decoding, with the server's 400.
- `[]byte` (Secret `data`, ConfigMap `binaryData`): base64 as Go's encoding/json reads it (padding
  required, line breaks ignored); a bad value is the server's 400 naming the byte offset, a good one is
  stored re-encoded without line breaks.
- resource names (`cpu`, `requests.memory`, `example.com/gpu`, `hugepages-2Mi`): which are standard for
  quotas, containers and limit ranges (k8s.io/kubernetes pkg/apis/core/helper).

A value Go's decoder refuses outright is an `Undecodable`; objects that hold such values derive from
`GoDecodedObject`, which turns it into `<Kind> in version "v1" cannot be handled as a <Kind>: <reason>`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import AfterValidator, ModelWrapValidatorHandler, PlainValidator, model_validator

from emulator import validation
from emulator.errors import FieldError, bad_request, invalid
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.protobuf_layout import Message
from emulator.models.base import GoType
from emulator.models.meta import TypedObject


class Undecodable(Exception):
    """A value the API server's decoder refuses (an invalid quantity, bad base64): a 400 for the whole body."""


class GoDecodedObject(TypedObject):
    """An object with values only Go's decoder judges (quantities, base64): their refusal names the kind."""

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_undecodable(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except Undecodable as exc:
            kind = getattr(cls, "go_name", None) or cls.__name__
            api_version = data.get("apiVersion") if isinstance(data, dict) else None
            version = api_version.rpartition("/")[2] if isinstance(api_version, str) and api_version else "v1"
            raise bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {exc}') from None


# -- resource.Quantity --------------------------------------------------------------------------------

QUANTITY_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"
DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_BY_POWER = {0: "", **{e // 10: s for s, e in _BINARY_SUFFIXES.items()}}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_MAX_INT64 = 2**63 - 1
_MAX_INT64_FACTORS = 18  # decimal digits an int64 always holds
_NANO = Fraction(1, 10**9)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A parsed quantity: its exact value (rounded up to nano units, as the API server does) and format."""

    value: Fraction
    format: str
    text: str | None = None  # the text as sent, when Go keeps it (already canonical)

    def __str__(self) -> str:
        return self.text if self.text is not None else _canonical(self.value, self.format)

    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)

    def milli_value(self) -> int:
        """MilliValue(): the value in thousandths, rounded up."""
        thousandths = self.value * 1000
        return -((-thousandths.numerator) // thousandths.denominator)

    def is_integer(self) -> bool:
        return self.milli_value() % 1000 == 0

    @classmethod
    def zero(cls) -> Quantity:
        return cls(Fraction(0), DECIMAL_SI)


def _split(text: str) -> tuple[bool, str, str, str, str]:
    """apimachinery's parseQuantityString: (positive, value, numerator, denominator, suffix)."""
    positive, pos, end = True, 0, len(text)
    if text[0] in "+-":
        positive = text[0] != "-"
        pos = 1
    while pos < end and text[pos] == "0":  # leading zeros
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos >= end:
        return positive, text, text[start:], "", ""
    num = text[start:pos] or "0"
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isdigit() and text[pos].isascii():
            pos += 1
        if pos >= end:
            return positive, text, num, text[start:], ""
        denom = text[start:pos]
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isdigit() and text[pos].isascii():
        pos += 1
    if pos < end:
        raise Undecodable(QUANTITY_FORMAT_ERROR)
    return positive, value, num, denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix, as apimachinery's suffixer interprets it."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            exponent = int(suffix[1:], 10)
        except ValueError:
            raise Undecodable(QUANTITY_SUFFIX_ERROR) from None
        if -(2**63) <= exponent <= _MAX_INT64 and suffix[1:].lstrip("+-").isdigit():
            return 10, exponent, DECIMAL_EXPONENT
    raise Undecodable(QUANTITY_SUFFIX_ERROR)


_EXACT_DIGITS = 40  # digits worth computing with: beyond them a value is capped or rounds up to 1n anyway


def _amount(num: str, denom: str, base: int, exponent: int) -> Fraction:
    """num.denom × base^exponent, exact where it matters and bounded in work whatever the text: a value
    past int64 is capped and one under a nano unit rounds up later, so neither is computed in full."""
    significant = (num + denom).strip("0")
    if not significant:
        return Fraction(0)
    magnitude = len(num.lstrip("0")) + (exponent if base == 10 else exponent * 3 // 10)  # ~ log10 + 1
    if magnitude > 20:
        return Fraction(_MAX_INT64 + 1)
    if magnitude < -_EXACT_DIGITS:
        return _NANO / 2  # some amount under a nano unit: rounds up to 1n
    rest = denom[_EXACT_DIGITS:]
    denom = denom[:_EXACT_DIGITS]
    digits = Fraction(int(num + denom or "0"), 10 ** len(denom))
    if rest.strip("0"):
        digits += Fraction(1, 10 ** (_EXACT_DIGITS + 1))  # what was cut off only matters for rounding up
    return digits * (Fraction(10) ** exponent if base == 10 else Fraction(2) ** exponent)


def parse_quantity(text: str) -> Quantity:
    """resource.ParseQuantity: a Quantity, or Undecodable with the API server's reason."""
    if not text:
        raise Undecodable(QUANTITY_FORMAT_ERROR)
    positive, _value, num, denom, suffix = _split(text)
    base, exponent, fmt = _interpret(suffix)
    amount = _amount(num, denom, base, exponent)
    # Go keeps the text as sent when its int64 fast path finds it canonical already
    kept: str | None = None
    shifted = num + denom
    if fmt == BINARY_SI:
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1 if not denom else -1
        if precision >= 0 and int(shifted) << exponent <= _MAX_INT64 and int(shifted) & 0x07:
            kept = text
    else:
        precision = _MAX_INT64_FACTORS - len(num) - len(denom)
        scale = exponent - len(denom)
        if precision >= 0 and scale >= -9 and scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0":
            kept = text
    if amount:
        rounded = amount / _NANO
        amount = Fraction(-((-rounded.numerator) // rounded.denominator)) * _NANO  # round up to nano units
    if amount > _MAX_INT64:
        amount, kept = Fraction(_MAX_INT64), None
    if fmt == BINARY_SI and 0 < amount < 1:
        fmt, kept = DECIMAL_SI, None
    return Quantity(amount if positive else -amount, fmt, kept)


def _canonical(value: Fraction, fmt: str) -> str:
    """Quantity.String() for a value not kept as sent (CanonicalizeBytes)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if fmt == BINARY_SI and (magnitude < 1024 or magnitude.denominator != 1):
        fmt = DECIMAL_SI
    if fmt == BINARY_SI:
        number, power = int(magnitude), 0
        while number % 1024 == 0 and power < 6:
            number //= 1024
            power += 1
        return f"{sign}{number}{_BINARY_BY_POWER[power]}"
    scaled = magnitude * 10**9
    number, exponent = int(scaled), -9
    if scaled.denominator != 1:  # finer than nano: cannot happen after parse_quantity's rounding
        number = -((-scaled.numerator) // scaled.denominator)
    while number % 10 == 0:
        number //= 10
        exponent += 1
    while exponent % 3:
        number *= 10
        exponent -= 1
    if exponent == 0:
        suffix = ""
    elif fmt == DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        suffix = _DECIMAL_BY_EXPONENT[exponent]
    else:
        suffix = f"e{exponent}"
    return f"{sign}{number}{suffix}"


def quantity_of(value: Any) -> Quantity:
    """A stored (canonical) quantity read back; an absent one is zero."""
    if value is None:
        return Quantity.zero()
    if isinstance(value, bool):
        raise Undecodable(QUANTITY_FORMAT_ERROR)
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str):
        raise Undecodable(QUANTITY_FORMAT_ERROR)
    return parse_quantity(value.strip())


def canonical_quantity(value: Any) -> str:
    """What the API server stores for a quantity a client sent (a JSON string or number)."""
    return str(quantity_of(value))


def _decode_quantity(value: Any) -> str | None:
    # Go's Quantity.UnmarshalJSON: null is no value; a number is read like its text; anything else is parsed
    return None if value is None else canonical_quantity(value)


def _decode_quantity_in_map(value: Any) -> str:
    return canonical_quantity(value)  # a null map value is the zero quantity


# `resource.Quantity` fields and `v1.ResourceList` maps; stored canonical
QuantityValue = Annotated[Any, PlainValidator(_decode_quantity), GoType("resource.Quantity")]
ResourceList = dict[str, Annotated[Any, PlainValidator(_decode_quantity_in_map), GoType("resource.Quantity")]]


# -- []byte (base64) ----------------------------------------------------------------------------------

_B64_ALPHABET = {c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_NEWLINES = (0x0A, 0x0D)


def _illegal(offset: int) -> Undecodable:
    return Undecodable(f"illegal base64 data at input byte {offset}")


_VALID_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def decode_base64(text: str) -> bytes:
    """base64.StdEncoding.Decode, error offsets included (encoding/base64 decodeQuantum). Valid text is
    decoded at C speed; only text Go refuses walks the quanta, to find the offset Go reports."""
    src = text.encode()
    cleaned = src.replace(b"\n", b"").replace(b"\r", b"")  # Go skips line breaks anywhere
    if len(cleaned) % 4 == 0 and _VALID_B64.fullmatch(cleaned):
        return binascii.a2b_base64(cleaned)
    out = bytearray()
    si, end = 0, len(src)
    while si < end:
        quantum: list[int] = []
        length = 4
        while len(quantum) < 4:
            if si == end:
                if not quantum:
                    return bytes(out)
                raise _illegal(si - len(quantum))
            char = src[si]
            si += 1
            if char in _B64_ALPHABET:
                quantum.append(_B64_ALPHABET[char])
                continue
            if char in _NEWLINES:
                continue
            if char != ord("="):
                raise _illegal(si - 1)
            j = len(quantum)
            if j < 2:
                raise _illegal(si - 1)
            if j == 2:  # "==" expected: the first "=" is read
                while si < end and src[si] in _NEWLINES:
                    si += 1
                if si == end:
                    raise _illegal(end)
                if src[si] != ord("="):
                    raise _illegal(si - 1)
                si += 1
            while si < end and src[si] in _NEWLINES:
                si += 1
            if si < end:
                raise _illegal(si)  # trailing garbage
            length = j
            break
        padded = quantum + [0] * (4 - len(quantum))
        value = padded[0] << 18 | padded[1] << 12 | padded[2] << 6 | padded[3]
        out += value.to_bytes(3, "big")[: length - 1]
    return bytes(out)


def _decode_bytes(value: str | None) -> str:
    return "" if value is None else base64.b64encode(decode_base64(value)).decode()  # null is an empty []byte


# `[]byte` values (Secret data, ConfigMap binaryData): a JSON string of base64, stored re-encoded; another
# JSON type is the decoder's type error naming the field
Base64Bytes = Annotated[str | None, GoType("[]uint8"), AfterValidator(_decode_bytes)]


def path_segment_errors(name: str) -> list[str]:
    """IsValidPathSegmentName: what may be a name in a URL path (references to other objects)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# protobuf bodies (`kubectl create secret|configmap`): a map<string, bytes> is decoded as its entries
# (api/protobuf.py reads map<string, string> only); `bytes_map_from_protobuf` makes it the JSON form
BYTES_MAP_ENTRY: Message = {1: ProtoField("key", "string"), 2: ProtoField("value", "bytes")}


QUANTITY_MAP_ENTRY: Message = {
    1: ProtoField("key", "string"), 2: ProtoField("value", "message", {1: ProtoField("string", "string")}),
}
# metav1.LabelSelector
LABEL_SELECTOR: Message = {
    1: ProtoField("matchLabels", "map"),
    2: ProtoField("matchExpressions", "message", {
        1: ProtoField("key", "string"), 2: ProtoField("operator", "string"), 3: ProtoField("values", "string", repeated=True),
    }, repeated=True),
}


def quantity_map_from_protobuf(value: Any) -> Any:
    """A map<string, Quantity> decoded from protobuf (entries of {key, value: {string}}) as its JSON form."""
    if not isinstance(value, list) or not all(isinstance(e, dict) and isinstance(e.get("value", {}), dict) for e in value):
        return value
    return {str(e.get("key", "")): (e.get("value") or {}).get("string", "0") for e in value}


def bytes_map_from_protobuf(value: Any) -> Any:
    """Entries decoded from protobuf (raw bytes, which no JSON body can hold) as a map of base64 text;
    anything else is returned as it came."""
    if not isinstance(value, list) or not all(isinstance(e, dict) and isinstance(e.get("value", b""), bytes) for e in value):
        return value
    if not any(isinstance(e.get("value"), bytes) for e in value):
        return value  # no raw bytes: a JSON body (a list where a map belongs is the decoder's to refuse)
    return {str(e.get("key", "")): base64.b64encode(e.get("value", b"")).decode() for e in value}


# -- resource names (pkg/apis/core/helper) --------------------------------------------------------------

RESOURCE_DEFAULT_NAMESPACE_PREFIX = "kubernetes.io/"
REQUESTS_PREFIX = "requests."
_POD_COMPUTE = ("cpu", "memory", "limits.cpu", "limits.memory", "requests.cpu", "requests.memory")
_INTEGER_RESOURCES = frozenset({
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
})
_STANDARD_QUOTA_RESOURCES = _INTEGER_RESOURCES | frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
})
_STANDARD_RESOURCES = _STANDARD_QUOTA_RESOURCES | frozenset({"storage"})
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass", "CrossNamespacePodAffinity")


def is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def is_quota_hugepages(name: str) -> bool:
    return name.startswith(("hugepages-", "requests.hugepages-"))


def is_native(name: str) -> bool:
    return "/" not in name or RESOURCE_DEFAULT_NAMESPACE_PREFIX in name


def is_extended(name: str) -> bool:
    if is_native(name) or name.startswith(REQUESTS_PREFIX):
        return False
    return validation.is_qualified_name(REQUESTS_PREFIX + name)


def is_integer_resource(name: str) -> bool:
    return name in _INTEGER_RESOURCES or is_extended(name)


def overcommit_allowed(name: str) -> bool:
    return is_native(name) and not is_hugepages(name)


def is_standard_quota_resource(name: str) -> bool:
    return name in _STANDARD_QUOTA_RESOURCES or is_quota_hugepages(name)


def quota_scope_fits(scope: str, resource: str) -> bool:
    """IsResourceQuotaScopeValidForResource."""
    if scope == "BestEffort":
        return resource == "pods"
    if scope in ("Terminating", "NotTerminating", "NotBestEffort", "PriorityClass", "CrossNamespacePodAffinity"):
        return resource == "pods" or resource in _POD_COMPUTE
    return True


def validate_resource_name(name: str, path: str) -> list[FieldError]:
    """validateResourceName: a qualified name; without a domain, a standard resource."""
    problems = [invalid(path, name, m) for m in validation.qualified_name_errors(name)]
    if problems:
        return problems
    if "/" not in name and not (name in _STANDARD_RESOURCES or is_quota_hugepages(name)):
        return [invalid(path, name, "must be a standard resource type or fully qualified")]
    return []


def validate_container_resource_name(name: str, path: str) -> list[FieldError]:
    """validateContainerResourceName."""
    problems = validate_resource_name(name, path)
    if "/" not in name:
        if not (name in _STANDARD_CONTAINER_RESOURCES or is_hugepages(name)):
            return [*problems, invalid(path, name, "must be a standard resource for containers")]
    elif not is_native(name) and not is_extended(name):
        return [*problems, invalid(path, name, "doesn't follow extended resource name standard")]
    return problems


def validate_quota_resource_name(name: str, path: str) -> list[FieldError]:
    """ValidateResourceQuotaResourceName."""
    problems = validate_resource_name(name, path)
    if "/" not in name and not is_standard_quota_resource(name):
        return [*problems, invalid(path, name, "must be a standard resource for quota")]
    return problems


def validate_quantity_value(name: str, value: Any, path: str) -> list[FieldError]:
    """ValidateResourceQuantityValue: not negative; whole for the resources counted in units."""
    quantity = quantity_of(value)
    problems: list[FieldError] = []
    if quantity.value < 0:
        problems.append(invalid(path, str(quantity), "must be greater than or equal to 0"))
    if is_integer_resource(name) and not quantity.is_integer():
        problems.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {quantity}: must be an integer"))
    return problems
