"""SelfSubjectReview (authentication.k8s.io/v1): "who am I?" (`kubectl auth whoami`). Create-only and
never stored: api/authorization.py answers with the caller's user info."""

from __future__ import annotations

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.serviceaccount import AUTHENTICATION_V1

SELF_SUBJECT_REVIEWS = ResourceType(
    "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False, "", verbs=("create",)
)

SELF_SUBJECT_REVIEW_PROTOBUF: Message = {1: ProtoField("metadata", "message", OBJECT_META)}

KIND = Kind(SELF_SUBJECT_REVIEWS, protobuf={(AUTHENTICATION_V1, "SelfSubjectReview"): SELF_SUBJECT_REVIEW_PROTOBUF})
