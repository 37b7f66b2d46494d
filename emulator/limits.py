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
    """Size a decoded (YAML) body as if written out: a node its aliases share counts every time it
    appears, but is measured once (memoised), so a body of a few hundred bytes that expands to gigabytes
    is refused in microseconds. Deeper than MAX_DEPTH, larger than MAX_EXPANDED_BYTES or recursive: 400."""
    measured: dict[int, tuple[int, int]] = {}  # id(container) -> (expanded bytes, depth below it)
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if not children_done:
            if key in measured:
                continue
            if key in visiting:
                raise errors.bad_request("the body refers to itself (a recursive YAML alias)")
            visiting.add(key)
            stack.append((node, True))
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, dict | list) and id(child) not in measured:
                    stack.append((child, False))
            continue
        visiting.discard(key)
        size, depth = 2, 0
        pairs = node.items() if isinstance(node, dict) else ((None, child) for child in node)
        for name, child in pairs:
            size += (len(name) + 4 if isinstance(name, str) else 8) if isinstance(node, dict) else 1
            if isinstance(child, dict | list):
                child_size, child_depth = measured[id(child)]
                size += child_size
                depth = max(depth, child_depth + 1)
            else:
                size += len(child) + 2 if isinstance(child, str) else 8
        if depth > MAX_DEPTH:
            raise errors.bad_request(f"the body is nested more than {MAX_DEPTH} levels deep")
        if size > MAX_EXPANDED_BYTES:
            raise errors.bad_request(
                f"the body expands to more than {MAX_EXPANDED_BYTES} bytes (YAML aliases?): send it as plain JSON or YAML"
            )
        measured[key] = (size, depth)
