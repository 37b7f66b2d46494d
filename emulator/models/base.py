"""The pydantic base for API objects: camelCase on the wire, JSON types as strict as Go's decoder,
unknown fields caught, not kept.

Models validate and default what clients send; they are used at the edge only. The store keeps the
dumped JSON (see emulator/store), never model instances: a pydantic object per stored pod would cost
~10 KB and make the garbage collector's pauses grow with the store.

Unknown fields are allowed through validation so that we can report them the way the API server
does (`fieldValidation=Strict` → 400, `Warn` → a Warning header), and are then dropped.

Types are strict, as the API server's JSON decoder is: `port: "80"` or `hostNetwork: "yes"` is not
coerced but refused with a 400 BadRequest naming the Go struct field, e.g.
`Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field
ContainerPort.spec.containers.ports.containerPort of type int32`. Fields that accept a number or a
name (`targetPort`) are `IntOrString`; fields the emulator only stores stay `Any`. What decodes but
breaks a rule (a missing required field, an unsupported enum value) is a 422 Invalid with causes.
"""

from __future__ import annotations

import threading
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from emulator.errors import FieldError, StatusError, bad_request, not_supported
from emulator.schemas import ANY, ITEMS, Mismatch, Trie


@dataclass(frozen=True, slots=True)
class GoType:
    """The Go type a field decodes into in the API server, named in decode errors (`int32`, `v1.Protocol`).

    `in_struct=False` marks a type with its own UnmarshalJSON (IntOrString): Go's error then names no
    struct field, only the value's type (`json: cannot unmarshal bool into Go value of type int32`).
    """

    name: str
    in_struct: bool = True


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
Int32 = Annotated[int, GoType("int32"), Ge(INT32_MIN), Le(INT32_MAX)]
Int64 = Annotated[int, GoType("int64")]
# intstr.IntOrString: a JSON string is a name, anything else must be an int32
IntOrString = Annotated[Int32 | str, GoType("int32", in_struct=False)]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", validate_default=False, serialize_by_alias=True,
        strict=True,  # as Go's decoder: "80" is no int32, "yes" no bool, 80 no string
        defer_build=True,  # validators are built on first use: start-up does not pay for every kind
    )
    # the Go struct's name where it differs from the class name (decode errors name it)
    go_name: ClassVar[str | None] = None


_OBJECTS: dict[str, type[ApiObject]] = {}


class ApiObject(ApiModel):
    """A top-level object (what a request body decodes into). A body whose JSON types do not fit is
    refused here with the API server's 400 decode error; other schema errors stay a ValidationError,
    which the registry turns into a 422 with `field_errors`."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _OBJECTS[cls.__name__] = cls  # ValidationError.title is the class name: field_errors finds it again

    @model_validator(mode="wrap")
    @classmethod
    def _decode_like_go(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            error = decode_error(cls, exc, data)
            if error is not None:
                raise error from None
            raise


# -- walking a model along an error location ---------------------------------------------------------

_NONE = type(None)
_UNION_TAGS = ("int", "str", "bool", "float")
_UNION_TAG_PREFIXES = ("function-", "literal[", "list[", "dict[", "nullable[", "constrained-")


def _unwrap(tp: Any, go: GoType | None = None) -> tuple[Any, GoType | None]:
    """Strip Annotated and Optional; the bare type and the outermost GoType met on the way."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            args = typing.get_args(tp)
            go = go or next((m for m in args[1:] if isinstance(m, GoType)), None)
            tp = args[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not _NONE]
            if len(members) != 1:
                return tp, go
            tp = members[0]
        else:
            return tp, go


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _struct_name(model: type[BaseModel]) -> str:
    return getattr(model, "go_name", None) or model.__name__


def _go_name(tp: Any, go: GoType | None = None) -> str:
    """How Go's decoder names the type (`int32`, `[]v1.ServicePort`, `map[string]string`)."""
    tp, go = _unwrap(tp, go)
    if go is not None:
        return go.name
    origin = typing.get_origin(tp)
    if _is_model(tp):
        return f"v1.{_struct_name(tp)}"
    if origin is list:
        return "[]" + _go_name(typing.get_args(tp)[0])
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"map[{_go_name(key)}]{_go_name(value)}"
    if origin is Literal or tp is str:
        return "string"
    return {bool: "bool", int: "int64", float: "float64"}.get(tp, "interface {}")


def _union_member(tp: Any, tag: str) -> Any:
    for member in typing.get_args(tp):
        bare, _ = _unwrap(member)
        name = bare.__name__ if isinstance(bare, type) else str(typing.get_origin(bare) or bare).lower()
        if tag == name or tag.startswith(name.split("[")[0] + "["):
            return member
    return None


@dataclass(slots=True)
class _Place:
    """Where an error location leads in the model: what Go's decoder would report, and the field path."""

    struct: str  # the innermost Go struct whose field is decoded
    fields: list[str]  # Go's field stack: JSON names, no indices or map keys
    path: str  # the Kubernetes field path, e.g. spec.ports[0].port
    type: Any  # the annotation at the end
    go: GoType | None

    @property
    def go_type(self) -> str:
        return _go_name(self.type, self.go)

    @property
    def in_struct(self) -> bool:
        return self.go is None or self.go.in_struct

    def literal_values(self) -> list[str] | None:
        bare, _ = _unwrap(self.type)
        return [str(v) for v in typing.get_args(bare)] if typing.get_origin(bare) is Literal else None


def _place(root: type[BaseModel], loc: tuple[int | str, ...]) -> _Place:
    place = _Place(_struct_name(root), [], "", root, None)
    tp: Any = root
    go: GoType | None = None
    for part in loc:
        bare, go = _unwrap(tp, go)
        origin = typing.get_origin(bare)
        if origin in (Union, types.UnionType) and isinstance(part, str):
            member = _union_member(bare, part)
            tp = member if member is not None else bare
            continue  # a union's tag (`int`, `str`) is no field
        if _is_model(bare) and isinstance(part, str):
            field = next(
                (f for name, f in bare.model_fields.items() if part in (f.alias, name)), None
            )
            if field is None:  # an unknown field: nothing more to learn
                place.fields.append(part)
                place.path = f"{place.path}.{part}" if place.path else part
                tp, go = Any, None
                continue
            place.struct = _struct_name(bare)
            name = field.alias or part
            place.fields.append(name)
            place.path = f"{place.path}.{name}" if place.path else name
            tp = field.annotation
            go = next((m for m in field.metadata if isinstance(m, GoType)), None)
            continue
        if origin is list and isinstance(part, int):
            place.path += f"[{part}]"
            tp, go = typing.get_args(bare)[0], None
            continue
        if origin is dict:
            place.path += f"[{part}]"
            tp, go = typing.get_args(bare)[1], None
            continue
        if isinstance(part, str) and (part in _UNION_TAGS or part.startswith(_UNION_TAG_PREFIXES)):
            continue
        place.path += f"[{part}]" if isinstance(part, int) else (f".{part}" if place.path else part)
        tp, go = Any, None
    place.type, place.go = tp, go
    return place


# -- decode errors: 400, worded as the API server's JSON decoder ---------------------------------------

_TYPE_ERRORS = frozenset({
    "int_type", "bool_type", "string_type", "float_type", "list_type", "dict_type", "model_type",
    "model_attributes_type", "int_from_float", "int_parsing", "bool_parsing", "float_parsing",
    "string_sub_type", "union_tag_invalid", "is_instance_of",
})
_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


# -- the fields a model leaves open ---------------------------------------------------------------------

_OPEN: dict[type[BaseModel], dict[str, Any]] = {}  # only complete tries: readers take no lock
_OPEN_BUILD = threading.Lock()


def open_fields(model: type[BaseModel]) -> Trie:
    """Where `model` keeps what a client sends as it comes (fields typed `Any`): a trie of JSON field
    names (emulator/schemas.py `check_open_fields` checks those parts against the 1.32 schema). Empty
    when the model types every field. Built once per model, also from the API's worker thread (a large
    body is decoded there): the tries of one build are published together, once all are complete."""
    found = _OPEN.get(model)
    if found is not None:
        return found
    with _OPEN_BUILD:
        building: dict[type[BaseModel], dict[str, Any]] = {}
        found = _open_fields(model, building)
        _OPEN.update(building)
    return found


def _open_fields(model: type[BaseModel], building: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    found = _OPEN.get(model)
    if found is None:
        found = building.get(model)
    if found is None:
        found = building[model] = {}  # (set first: a model that contains itself ends here)
        for name, info in model.model_fields.items():
            sub = _open_in(info.annotation, building)
            if sub:
                found[info.alias or to_camel(name)] = sub
    return found


def _open_in(tp: Any, building: dict[type[BaseModel], dict[str, Any]]) -> Any:
    tp, _ = _unwrap(tp)
    if tp is Any:
        return ANY
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        inner = _open_in(item, building)
        return ANY if inner == ANY else ({ITEMS: inner} if inner else None)
    if origin is dict:
        return ANY if _unwrap(typing.get_args(tp)[1])[0] is Any else None
    if _is_model(tp):
        return _open_fields(tp, building) or None
    return None


def mismatch_error(kind: str, api_version: str, problem: Mismatch) -> StatusError:
    """The API server's 400 for a value of the wrong JSON type in a field a model left open."""
    into_int = problem.go_type.startswith(("int", "uint")) and isinstance(problem.value, (int, float))
    target = f"Go struct field {problem.struct}.{'.'.join(problem.fields)} of type {problem.go_type}"
    version = api_version.rpartition("/")[2] or "v1"
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal {_json_kind(problem.value, into_int)} into {target}')


def _json_kind(value: Any, into_int: bool) -> str:
    """encoding/json's UnmarshalTypeError.Value: the JSON kind, with the literal for a number an int cannot hold."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return f"number {value!r}" if into_int else "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _is_decode_error(err: Any, place: _Place) -> bool:
    value = err.get("input")
    if value is None:  # JSON null decodes to Go's zero value: validation speaks about it, not the decoder
        return False
    if err["type"] in _TYPE_ERRORS:
        return True
    if err["type"] == "literal_error":
        return not isinstance(value, str)
    return err["type"] in _RANGE_ERRORS and place.go_type in ("int32", "int64") and isinstance(value, int)


def _document_order(data: Any, loc: tuple[int | str, ...]) -> tuple[int, ...]:
    """Position of `loc` in the body as sent: Go's decoder reports the first mismatch it reads."""
    order: list[int] = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            order.append(list(data).index(part))
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            order.append(part)
            data = data[part]
        else:
            break
    return tuple(order)


def decode_error(model: type[BaseModel], exc: ValidationError, data: Any) -> StatusError | None:
    """The API server's 400 for a body whose JSON types do not fit the object, or None when every
    problem is one validation reports (a 422)."""
    found = []
    for err in exc.errors(include_url=False):
        place = _place(model, err["loc"])
        if _is_decode_error(err, place):
            found.append((_document_order(data, err["loc"]), err, place))
    if not found:
        return None
    _, err, place = min(found, key=lambda f: f[0])
    into_int = place.go_type in ("int32", "int64") and isinstance(err["input"], (int, float))
    value = _json_kind(err["input"], into_int)
    if place.in_struct and place.fields:
        target = f"Go struct field {place.struct}.{'.'.join(place.fields)} of type {place.go_type}"
    else:
        target = f"Go value of type {place.go_type}"
    kind = getattr(model, "go_name", None) or model.__name__
    api_version = data.get("apiVersion") if isinstance(data, dict) else None
    version = api_version.rpartition("/")[2] if isinstance(api_version, str) and api_version else "v1"
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal {value} into {target}')


# -- unknown fields and validation errors --------------------------------------------------------------


def unknown_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Paths of every field the client sent that the schema does not know, and remove them."""
    found: list[str] = []
    _unknown(model, (prefix,), found)
    return found


# A path is built only when something unknown is found: (parent path, field, list index or None), the
# root being (prefix,). A 1,000-address Endpoints is walked without formatting 2,000 path strings.
_Path = tuple[Any, ...]


def _render(path: _Path) -> str:
    parts: list[str] = []
    while len(path) == 3:
        path, name, index = path
        parts.append(f"{name}." if index is None else f"{name}[{index}].")
    return path[0] + "".join(reversed(parts))


def _unknown(model: BaseModel, path: _Path, found: list[str]) -> None:
    extra = model.__pydantic_extra__
    if extra:
        base = _render(path)
        found.extend(f"{base}{key}" for key in extra)
        extra.clear()
    nested = _NESTED.get(type(model))
    if nested is None:
        nested = _NESTED[type(model)] = _nested_fields(type(model))
    if not nested:
        return
    sent = model.model_fields_set  # only what the client sent can hold unknown fields
    for name, alias in nested:
        if name not in sent:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _unknown(value, (path, alias, None), found)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    _unknown(item, (path, alias, i), found)


_NESTED: dict[type[BaseModel], tuple[tuple[str, str], ...]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _may_hold_models(annotation: Any) -> bool:
    """Whether a field of this type may hold a model (directly or in a list); scalars never do."""
    if annotation in _SCALARS:
        return False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _may_hold_models(args[0])
    if origin is dict or origin is typing.Literal:
        return False  # the walk looks into models and lists only
    if args and origin is not list:
        return any(_may_hold_models(a) for a in args)  # a union
    return True  # a model, a list, Any: looked at


def _nested_fields(cls: type[BaseModel]) -> tuple[tuple[str, str], ...]:
    """The fields of a model class that may hold models, in declaration order, with their JSON names."""
    return tuple((name, f.alias or name) for name, f in cls.model_fields.items() if _may_hold_models(f.annotation))


def loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or part.startswith(_UNION_TAG_PREFIXES):
            continue  # a union member's tag, not a field
        else:
            out += f".{part}" if out else str(part)
    return out


def _errors(exc: ValidationError) -> Iterator[tuple[Any, _Place | None]]:
    model = _OBJECTS.get(exc.title)
    for err in exc.errors(include_url=False):
        yield err, (_place(model, err["loc"]) if model is not None else None)


def field_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as Kubernetes field causes (`spec.containers[0].ports[0].containerPort`):
    a missing field is Required, a value outside an enum NotSupported (listing the supported values)."""
    out: list[FieldError] = []
    seen: set[str] = set()
    for err, place in _errors(exc):
        path = (place.path if place is not None else loc_path(err["loc"])) or "<body>"
        value: Any = err.get("input")
        if err["type"] == "missing":
            cause = FieldError(path, "FieldValueRequired", "Required value")
        elif err["type"] == "literal_error" and place is not None and place.literal_values() is not None:
            cause = not_supported(path, value, place.literal_values() or [])
        else:
            shown = f'"{value}"' if isinstance(value, str) else "null" if value is None else repr(value)
            cause = FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {err['msg']}")
        if cause.describe() not in seen:  # one cause per field for a union's members
            seen.add(cause.describe())
            out.append(cause)
    return out
