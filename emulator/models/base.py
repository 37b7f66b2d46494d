"""The pydantic base for API objects: camelCase on the wire, unknown fields caught, not kept.

Models validate and default what clients send; they are used at the edge only. The store keeps the
dumped JSON (see emulator/store), never model instances: a pydantic object per stored pod would cost
~10 KB and make the garbage collector's pauses grow with the store.

Unknown fields are allowed through validation so that we can report them the way the API server
does (`fieldValidation=Strict` → 400, `Warn` → a Warning header), and are then dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from emulator.errors import FieldError


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", validate_default=False, serialize_by_alias=True,
        defer_build=True,  # validators are built on first use: start-up does not pay for every kind
    )


def unknown_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Paths of every field the client sent that the schema does not know, and remove them."""
    found: list[str] = []
    extra = model.__pydantic_extra__
    if extra:
        found.extend(f"{prefix}{key}" for key in extra)
        extra.clear()
    sent = model.model_fields_set  # only what the client sent can hold unknown fields
    for name, field in type(model).model_fields.items():
        if name not in sent:
            continue
        value = getattr(model, name)
        path = f"{prefix}{field.alias or name}"
        if isinstance(value, BaseModel):
            found.extend(unknown_fields(value, path + "."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.extend(unknown_fields(item, f"{path}[{i}]."))
    return found


def loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def field_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as Kubernetes field causes (`spec.containers[0].ports[0].containerPort`)."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "int", "str"))))
        path = loc_path(loc) or "<body>"
        if err["type"] == "missing":
            out.append(FieldError(path, "FieldValueRequired", "Required value"))
        else:
            value: Any = err.get("input")
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            out.append(FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {err['msg']}"))
    return out
