"""TokenReview (authentication.k8s.io/v1): create-only and never stored; the registry answers it at
once (emulator/registry/tokens.py), as the API server does."""

from __future__ import annotations

from emulator.kinds.base import Kind, ResourceType
from emulator.kinds.protobuf_layout import OBJECT_META, Message
from emulator.kinds.protobuf_layout import Field as ProtoField

TOKEN_REVIEWS = ResourceType(
    "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, "", verbs=("create",)
)

TOKEN_REVIEW_PROTOBUF: Message = {
    1: ProtoField("metadata", "message", OBJECT_META),
    2: ProtoField("spec", "message", {1: ProtoField("token", "string"), 2: ProtoField("audiences", "string", repeated=True)}),
}

KIND = Kind(TOKEN_REVIEWS, protobuf={(TOKEN_REVIEWS.api_version, "TokenReview"): TOKEN_REVIEW_PROTOBUF})
