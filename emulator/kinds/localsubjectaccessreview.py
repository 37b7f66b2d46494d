"""LocalSubjectAccessReview (authorization.k8s.io/v1, namespaced): a SubjectAccessReview confined to
one namespace (namespace admins may ask it). Create-only and never stored: api/authorization.py answers it."""

from __future__ import annotations

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.selfsubjectaccessreview import ACCESS_REVIEW_SPEC, AUTHORIZATION_GROUP, AUTHORIZATION_V1

LOCAL_SUBJECT_ACCESS_REVIEWS = ResourceType(
    AUTHORIZATION_GROUP, "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True, "", verbs=("create",)
)

LOCAL_SUBJECT_ACCESS_REVIEW_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", ACCESS_REVIEW_SPEC),
}

KIND = Kind(
    LOCAL_SUBJECT_ACCESS_REVIEWS,
    protobuf={(AUTHORIZATION_V1, "LocalSubjectAccessReview"): LOCAL_SUBJECT_ACCESS_REVIEW_PROTOBUF},
)
