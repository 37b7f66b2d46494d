"""Kubernetes `Status` errors as values: every failed request ends as one of these.

Messages follow apimachinery's `pkg/api/errors` wording, because kubectl prints them verbatim
(`Error from server (NotFound): pods "x" not found`) and users search for that text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class FieldError:
    """One cause of an Invalid error: `field` is a path like `spec.ports[0].port`."""

    field: str
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueDuplicate, FieldValueNotSupported, ...
    message: str

    def as_cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def describe(self) -> str:
        return f"{self.field}: {self.message}"


def required(path: str) -> FieldError:
    return FieldError(path, "FieldValueRequired", "Required value")


def invalid(path: str, value: Any, detail: str) -> FieldError:
    shown = value if isinstance(value, (int, float)) and not isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else repr(value)
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")


def duplicate(path: str, value: Any) -> FieldError:
    shown = f'"{value}"' if isinstance(value, str) else value
    return FieldError(path, "FieldValueDuplicate", f"Duplicate value: {shown}")


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    options = ", ".join(f'"{s}"' for s in supported)
    return FieldError(path, "FieldValueNotSupported", f'Unsupported value: "{value}": supported values: {options}')


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueForbidden", f"Forbidden: {detail}")


@dataclass
class StatusError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    empty_details: bool = False  # write `details` even when empty (Go's non-nil empty StatusDetails)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        # keys in the order of Go's Status struct (the JSON clients like the Python client's utils echo)
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details or self.empty_details:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(resource: str, name: str | None) -> dict[str, Any]:
    # `resource` is the qualified resource ("pods", "networkpolicies.networking.k8s.io")
    plural, _, group = resource.partition(".")
    details: dict[str, Any] = {}  # name, group, kind: the order of Go's StatusDetails
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def no_such_path(what: str = "") -> StatusError:
    """A path the API does not serve (a resource, a subresource): the API server's NotFound handler, whose
    Status has empty details (kubectl tells this 404 from a missing object by them: `kubectl debug` on a server
    without ephemeral containers says so instead of crashing on a Status without details)."""
    return StatusError(404, "NotFound", "the server could not find the requested resource" + (f" ({what})" if what else ""), empty_details=True)


def not_found(resource: str, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{resource} "{name}" not found', _details(resource, name))


def already_exists(resource: str, name: str) -> StatusError:
    return StatusError(409, "AlreadyExists", f'{resource} "{name}" already exists', _details(resource, name))


def conflict(resource: str, name: str, detail: str | None = None) -> StatusError:
    why = detail or "the object has been modified; please apply your changes to the latest version and try again"
    return StatusError(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": {why}', _details(resource, name))


def invalid_object(kind: str, group: str, name: str, errors: list[FieldError]) -> StatusError:
    text = ", ".join(e.describe() for e in errors)
    message = f'{kind} "{name}" is invalid: {text}' if len(errors) == 1 else f'{kind} "{name}" is invalid: [{text}]'
    details: dict[str, Any] = {"name": name, **({"group": group} if group else {}), "kind": kind}
    details["causes"] = [e.as_cause() for e in errors]
    return StatusError(422, "Invalid", message, details)


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{content_type}")')


def too_large(limit: int) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def expired(requested: int, oldest: int) -> StatusError:
    return StatusError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def gone(message: str) -> StatusError:
    return StatusError(410, "Gone", message)


def unauthorized(message: str = "Unauthorized") -> StatusError:
    return StatusError(401, "Unauthorized", message)


def forbidden_request(message: str) -> StatusError:
    return StatusError(403, "Forbidden", message)


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", message)


def go_string_slice(values: list[Any]) -> str:
    """A []string as the API server prints a bad value of that type (Go's %#v): `[]string{"a", "b"}`."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def invalid_strings(path: str, values: list[Any], detail: str) -> FieldError:
    """An Invalid cause whose bad value is a whole list of strings (`spec.clusterIPs`), shown as Go shows it."""
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {go_string_slice(values)}: {detail}")


def not_found_value(path: str, value: Any) -> FieldError:
    """field.NotFound: a reference to something the object does not have (`volumeMounts[0].name`)."""
    shown = f'"{value}"' if isinstance(value, str) else value
    return FieldError(path, "FieldValueNotFound", f"Not found: {shown}")
