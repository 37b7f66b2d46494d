"""How much work one request may ask for: the bounds that keep a single body from stalling the process.

- an object as stored: at most 1.5 MiB (etcd's limit for a value, the anchor every cluster has) → 413;
- nesting: as deep as the store can encode (orjson's 254 levels) and no deeper → 400;
- a YAML body's expansion: aliases may not make it larger than a JSON body may be (a "billion laughs"
  body of a few hundred bytes is refused before anything walks the expanded object) → 400;
- a JSON patch is checked while it runs, so that doubling `copy` operations stop at the limit.
"""

from __future__ import annotations

from typing import Any

import orjson

from emulator import errors

MAX_OBJECT_BYTES = 1536 * 1024  # etcd's default --max-request-bytes: the largest object a cluster stores
MAX_EXPANDED_BYTES = 3 * 1024 * 1024  # what a decoded body may amount to (the API server's body limit)
MAX_DEPTH = 100  # nesting of a decoded body; real manifests stay under 20


def too_large(what: str, limit: int) -> errors.StatusError:
    return errors.StatusError(
        413, "RequestEntityTooLarge", f"Request entity too large: {what} is over the limit of {limit} bytes"
    )


def encoded(obj: Any, what: str = "the object") -> bytes:
    """`obj` as the store keeps it, refused when it is nested too deeply or larger than a cluster stores."""
    try:
        raw = orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:
        raise errors.bad_request(f"{what} cannot be stored: {exc} (nested too deeply?)") from None
    if len(raw) > MAX_OBJECT_BYTES:
        raise too_large(what, MAX_OBJECT_BYTES)
    return raw


def check_expansion(value: Any) -> None:
    """Walk a decoded (YAML) body with a budget: shared nodes (aliases) count every time they appear,
    so the walk stops as soon as the expansion passes MAX_EXPANDED_BYTES or nests past MAX_DEPTH."""
    budget = MAX_EXPANDED_BYTES
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise errors.bad_request(f"the body is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            budget -= 2 + 4 * len(node)
            for key, item in node.items():
                budget -= len(key) if isinstance(key, str) else 8
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            budget -= 2 + len(node)
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            budget -= len(node) + 2
        else:
            budget -= 8
        if budget < 0:
            raise errors.bad_request(
                f"the body expands to more than {MAX_EXPANDED_BYTES} bytes (YAML aliases?): send it as plain JSON or YAML"
            )
