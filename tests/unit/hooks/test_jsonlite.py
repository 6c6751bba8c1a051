"""claudematrix.hooks._jsonlite: the hooks' JSON without `import json`, read and written as
`json` does (the hooks parse Claude Code's input and write their output with it)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from claudematrix.hooks._jsonlite import dumps, loads

DOCUMENTS: list[Any] = [
    {"session_id": "abc", "stop_hook_active": True, "n": 3, "x": 1.5, "none": None},
    {"nested": {"list": [1, "two", [3.0, False]], "empty": {}}, "unicode": "é – 日本 \u2028"},
    [],
    'just a string with "quotes" and \\ and \n newlines',
    -12,
]


@pytest.mark.parametrize("value", DOCUMENTS)
def test_reads_and_writes_as_json_does(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text) == value
    assert loads("  \n" + text + " \t\n") == value  # surrounding white space
    assert json.loads(dumps(value)) == value
    assert dumps(value).isascii()  # \u escapes: safe in any terminal encoding


def test_writes_compactly() -> None:
    out = {"hookSpecificOutput": {"hookEventName": "Stop", "additionalContext": "a\nb"}}
    assert (
        dumps(out) == '{"hookSpecificOutput":{"hookEventName":"Stop","additionalContext":"a\\nb"}}'
    )


@pytest.mark.parametrize("text", ["", "   ", "not json", "{", '{"a": 1} trailing', "[1, 2]]"])
def test_what_is_not_one_json_document_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        loads(text)


def test_non_finite_numbers_are_read_as_json_reads_them() -> None:
    assert math.isnan(loads("NaN")) and loads("[Infinity]") == [math.inf]


def test_what_json_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot encode set"):
        dumps({"tags": {1, 2}})
