"""JSON without `import json` (which costs ~5 ms here: it imports `re`): the C scanner and
encoder of the `_json` accelerator module that `json` itself uses. Falls back to `json`."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["loads", "dumps"]

try:
    from _json import encode_basestring_ascii as _quote
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - an interpreter without the accelerator
    from json import dumps as _quote

    _make_scanner = None  # type: ignore[assignment, misc]


class _Context:
    # The attributes json.decoder.JSONDecoder gives the C scanner.
    strict = False
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity
    memo: dict[str, str] = {}


_scan: Any = _make_scanner(_Context()) if _make_scanner is not None else None  # type: ignore[arg-type]


def loads(text: str) -> Any:
    """Parse one JSON document; ValueError if it is not one."""
    if _scan is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip())
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("not JSON") from None
    if text[end:].strip():
        raise ValueError("extra data after JSON")
    return value


def dumps(value: Any) -> str:
    """Compact ASCII JSON for dicts, lists, str, bool, int, float and None."""
    if isinstance(value, str):
        return str(_quote(value))
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quote(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__}")
