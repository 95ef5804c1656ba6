"""Jenkins' ``tree=`` query parameter, as the simulator serves it: ``a,b[c,d]{M,N}`` selects
fields, nested fields and ranges of lists; ``_class`` always comes along, as in Jenkins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass
class TreeSpec:
    fields: dict[str, TreeSpec | None]
    ranges: dict[str, tuple[int | None, int | None]]


def parse_tree(text: str) -> TreeSpec:
    spec, rest = _parse_fields(text, 0)
    if rest != len(text):
        raise ValueError(f"bad tree spec at {rest}: {text!r}")
    return spec


def _parse_fields(text: str, i: int) -> tuple[TreeSpec, int]:
    spec = TreeSpec({}, {})
    while i < len(text):
        match = re.compile(r"[A-Za-z0-9_$]+").match(text, i)
        if not match:
            raise ValueError(f"bad tree spec at {i}: {text!r}")
        name = match.group(0)
        i = match.end()
        sub = None
        if i < len(text) and text[i] == "[":
            sub, i = _parse_fields(text, i + 1)
            if i >= len(text) or text[i] != "]":
                raise ValueError(f"unclosed [ in tree spec: {text!r}")
            i += 1
        spec.fields[name] = sub
        if i < len(text) and text[i] == "{":
            end = text.index("}", i)
            body = text[i + 1 : end]
            if "," in body:
                low, high = body.split(",", 1)
                spec.ranges[name] = (int(low) if low else None, int(high) if high else None)
            else:
                spec.ranges[name] = (int(body), int(body) + 1)
            i = end + 1
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        break
    return spec, i


def apply_tree(value: Any, spec: TreeSpec | None) -> Any:
    if spec is None:
        return value
    if isinstance(value, list):
        return [apply_tree(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for name, sub in spec.fields.items():
        if name not in value:
            continue
        item = value[name]
        if name in spec.ranges and isinstance(item, list):
            low, high = spec.ranges[name]
            item = item[low:high]
        out[name] = apply_tree(item, sub)
    if "_class" in value:  # Jenkins always sends _class, asked for or not
        out["_class"] = value["_class"]
    return out
