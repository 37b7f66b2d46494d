"""Protobuf message layouts (field numbers from k8s.io/api `generated.proto`): the shared parts every
kind's layout uses. A kind module declares its own messages from these; api/protobuf.py decodes bodies
with them. Only what the clients we serve send is declared; unknown fields are skipped when decoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """One field of a message layout.

    ``type`` is one of string, bytes, int, bool, message, map (map<string,string>), int_or_string,
    time.
    ``optional`` marks Go pointer fields: present means set, so zero values are kept; other
    fields are always written by gogo-proto and their zero values dropped (JSON ``omitempty``).
    """

    name: str
    type: str
    message: Mapping[int, Field] | None = None
    repeated: bool = False
    optional: bool = False


Message = Mapping[int, Field]

TIME: Message = {1: Field("seconds", "int"), 2: Field("nanos", "int")}
INT_OR_STRING: Message = {1: Field("type", "int"), 2: Field("intVal", "int"), 3: Field("strVal", "string")}

OWNER_REFERENCE: Message = {
    1: Field("kind", "string"),
    3: Field("name", "string"),
    4: Field("uid", "string"),
    5: Field("apiVersion", "string"),
    6: Field("controller", "bool", optional=True),
    7: Field("blockOwnerDeletion", "bool", optional=True),
}

OBJECT_META: Message = {
    1: Field("name", "string"),
    2: Field("generateName", "string"),
    3: Field("namespace", "string"),
    5: Field("uid", "string"),
    6: Field("resourceVersion", "string"),
    7: Field("generation", "int"),
    8: Field("creationTimestamp", "time"),
    11: Field("labels", "map"),
    12: Field("annotations", "map"),
    13: Field("ownerReferences", "message", OWNER_REFERENCE, repeated=True),
    14: Field("finalizers", "string", repeated=True),
}

OBJECT_REFERENCE: Message = {
    1: Field("kind", "string"),
    2: Field("namespace", "string"),
    3: Field("name", "string"),
    4: Field("uid", "string"),
    5: Field("apiVersion", "string"),
    6: Field("resourceVersion", "string"),
    7: Field("fieldPath", "string"),
}

LOCAL_OBJECT_REFERENCE: Message = {1: Field("name", "string")}
