"""SelfSubjectRulesReview (authorization.k8s.io/v1): "what may I do in this namespace?"
(`kubectl auth can-i --list`). Create-only and never stored: api/authorization.py answers it."""

from __future__ import annotations

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField
from emulator.kinds.selfsubjectaccessreview import AUTHORIZATION_GROUP, AUTHORIZATION_V1

SELF_SUBJECT_RULES_REVIEWS = ResourceType(
    AUTHORIZATION_GROUP, "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False, "", verbs=("create",)
)

SELF_SUBJECT_RULES_REVIEW_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {1: ProtoField("namespace", "string")}),
}

KIND = Kind(
    SELF_SUBJECT_RULES_REVIEWS,
    protobuf={(AUTHORIZATION_V1, "SelfSubjectRulesReview"): SELF_SUBJECT_RULES_REVIEW_PROTOBUF},
)
