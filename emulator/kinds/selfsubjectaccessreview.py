"""SelfSubjectAccessReview (authorization.k8s.io/v1): "may I do this?" (`kubectl auth can-i`).
Create-only and never stored: api/authorization.py answers it at once from the RBAC authorizer. The
protobuf layouts of the access-review specs, shared by the other access reviews, are here."""

from __future__ import annotations

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField

AUTHORIZATION_GROUP = "authorization.k8s.io"
AUTHORIZATION_V1 = f"{AUTHORIZATION_GROUP}/v1"
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType(
    AUTHORIZATION_GROUP, "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, "", verbs=("create",)
)

RESOURCE_ATTRIBUTES: Message = {
    1: ProtoField("namespace", "string"),
    2: ProtoField("verb", "string"),
    3: ProtoField("group", "string"),
    4: ProtoField("version", "string"),
    5: ProtoField("resource", "string"),
    6: ProtoField("subresource", "string"),
    7: ProtoField("name", "string"),
}
NON_RESOURCE_ATTRIBUTES: Message = {1: ProtoField("path", "string"), 2: ProtoField("verb", "string")}
ACCESS_REVIEW_SPEC: Message = {
    1: ProtoField("resourceAttributes", "message", RESOURCE_ATTRIBUTES),
    2: ProtoField("nonResourceAttributes", "message", NON_RESOURCE_ATTRIBUTES),
    3: ProtoField("user", "string"),
    4: ProtoField("groups", "string", repeated=True),
    6: ProtoField("uid", "string"),
}

SELF_SUBJECT_ACCESS_REVIEW_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {
        1: ProtoField("resourceAttributes", "message", RESOURCE_ATTRIBUTES),
        2: ProtoField("nonResourceAttributes", "message", NON_RESOURCE_ATTRIBUTES),
    }),
}

KIND = Kind(
    SELF_SUBJECT_ACCESS_REVIEWS,
    protobuf={(AUTHORIZATION_V1, "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW_PROTOBUF},
)
