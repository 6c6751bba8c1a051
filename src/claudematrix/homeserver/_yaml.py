"""A tiny YAML writer for the settings we generate (no YAML library needed).

Mappings are written in block style, lists of scalars in flow style, and every string as a
JSON string, which YAML reads as a double-quoted scalar. That covers everything Synapse's
config needs and can never produce ambiguous YAML (no bare "no", "on" or "1e3").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["dump_yaml"]


def dump_yaml(value: Mapping[str, Any], header: str = "") -> str:
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines.extend(_mapping(value, 0))
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as a YAML scalar")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _mapping(value: Mapping[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, item in value.items():
        name = json.dumps(str(key)) if not str(key).replace("_", "").isalnum() else str(key)
        lines.extend(_entry(f"{pad}{name}:", item, indent))
    return lines


def _entry(prefix: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, Mapping):
        if not item:
            return [f"{prefix} {{}}"]
        return [prefix, *_mapping(item, indent + 2)]
    if isinstance(item, Sequence) and not isinstance(item, str):
        if all(_is_scalar(element) for element in item):
            return [f"{prefix} [{', '.join(_scalar(element) for element in item)}]"]
        lines = [prefix]
        pad = " " * (indent + 2)
        for element in item:
            if isinstance(element, Mapping) and element:
                body = _mapping(element, indent + 4)
                lines.append(f"{pad}- {body[0].lstrip()}")
                lines.extend(body[1:])
            else:
                lines.extend(_entry(f"{pad}-", element, indent + 2))
        return lines
    return [f"{prefix} {_scalar(item)}"]
