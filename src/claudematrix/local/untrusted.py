"""The one sanitiser for text from other people and agents (docs/security.md, defence 3).

Every field a sender controls (subject, display names, status, task, project, branch, host,
labels, bodies) passes through here before it reaches Claude or a terminal, from the hooks,
the MCP server and the CLI alike. Standard library only, and cheap on plain text: the hooks
import it on their hot path (`unicodedata` is imported only for text that needs it).

- A single-line field loses every control character (C0, C1, DEL), whole ANSI/VT escape
  sequences (CSI, OSC, DCS, ...: clipboard writes, screen clears, hidden text), bidi
  overrides and isolates, zero-width and other invisible format characters, line and paragraph
  separators; runs of whitespace become one space; the result is capped in length.
- A body keeps newlines and tabs only (a carriage return becomes a newline: alone, it would
  let a line overwrite what came before it on a terminal).
- A body is framed by `fence`, whose closing line carries a random token the sender cannot
  know, and in which any line that imitates our fence (any case, spacing or lookalike) is
  defused.
"""

from __future__ import annotations

__all__ = [
    "one_line",
    "quoted",
    "body_text",
    "fence",
    "unsafe_characters",
    "NAME_MAX",
    "SUBJECT_MAX",
    "STATUS_MAX",
    "FIELD_MAX",
    "ID_MAX",
]

NAME_MAX = 80
SUBJECT_MAX = 200
STATUS_MAX = 200
FIELD_MAX = 120  # project, branch, host, task
ID_MAX = 255  # the Matrix limit for IDs
_ESC = "\x1b"
_C1_CSI, _C1_OSC, _C1_ST = "\x9b", "\x9d", "\x9c"
# Introducers of control *strings* (ended by ST or BEL): OSC, DCS, SOS, PM, APC.
_STRING_INTRODUCERS = {"]", "P", "X", "^", "_"}
_C1_STRINGS = {"\x9d", "\x90", "\x98", "\x9e", "\x9f"}
_MAX_COMBINING_RUN = 4


def _drop_escape_sequences(text: str) -> str:
    """Remove whole escape sequences; what is left of a malformed one is only text."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == _ESC and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "[":
                i = _skip_csi(text, i + 2)
                continue
            if nxt in _STRING_INTRODUCERS:
                i = _skip_string(text, i + 2)
                continue
            i += 2  # a two-character sequence (ESC c, ESC 7, ...)
            continue
        if ch == _C1_CSI:
            i = _skip_csi(text, i + 1)
            continue
        if ch in _C1_STRINGS:
            i = _skip_string(text, i + 1)
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _skip_csi(text: str, i: int) -> int:
    """Past `params intermediates final` of a CSI sequence starting at i."""
    n = len(text)
    j = i
    while j < n and "\x30" <= text[j] <= "\x3f":
        j += 1
    while j < n and "\x20" <= text[j] <= "\x2f":
        j += 1
    if j < n and "\x40" <= text[j] <= "\x7e":
        return j + 1
    return i  # malformed: keep the rest as text (its control characters go later)


def _skip_string(text: str, i: int) -> int:
    """Past a control string's terminator (BEL, ESC \\ or ST); unterminated: keep as text."""
    n = len(text)
    j = i
    while j < n:
        ch = text[j]
        if ch in ("\x07", _C1_ST):
            return j + 1
        if ch == _ESC and j + 1 < n and text[j + 1] == "\\":
            return j + 2
        j += 1
    return i


def _clean(text: str, keep: str) -> str:
    """Drop escape sequences and every invisible or control character except those in
    `keep`; turn other whitespace (tabs, NBSP, line separators, ...) into plain spaces."""
    if _ESC in text or _C1_CSI in text or any(c in text for c in _C1_STRINGS):
        text = _drop_escape_sequences(text)
    import unicodedata  # only for text that has something to clean

    out: list[str] = []
    combining = 0
    for ch in text:
        if ch.isprintable():
            if unicodedata.combining(ch):
                combining += 1
                if combining > _MAX_COMBINING_RUN:  # "zalgo" text that spills over lines
                    continue
            else:
                combining = 0
            out.append(ch)
        elif ch in keep:
            out.append(ch)
            combining = 0
        elif ch.isspace():  # \t, \n, NBSP, U+2028, ...: a visible gap, nothing more
            out.append(" ")
            combining = 0
        # everything else (C0, C1, DEL, bidi controls, zero-width, tags, surrogates,
        # private use, unassigned) is dropped
    return "".join(out)


def one_line(text: object, limit: int = FIELD_MAX) -> str:
    """A sender's single-line field as it may be shown: one clean line of at most `limit`."""
    value = text if isinstance(text, str) else ("" if text is None else str(text))
    if not (value.isascii() and value.isprintable()):
        value = _clean(value, keep="")
    if "  " in value or value[:1] == " " or value[-1:] == " ":
        value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "\u2026"


def quoted(text: object, limit: int = FIELD_MAX) -> str:
    """`one_line`, in double quotes with `"` and `\\` escaped: where it ends is unambiguous,
    so a name or subject cannot append what looks like our own words to a line."""
    value = one_line(text, limit)
    if '"' in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def body_text(text: str) -> str:
    """A message body as it may be shown: newlines and tabs kept, nothing else invisible."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() and text.replace("\n", "").replace("\t", "").isprintable():
        return text
    return _clean(text, keep="\n\t")


def unsafe_characters(text: str) -> bool:
    """Would `one_line` change anything but spacing? Our own send paths refuse such text."""
    if text.isascii() and text.isprintable():
        return False
    return _clean(text, keep="") != text


# --- the fence around a body ---------------------------------------------------------------

_FENCE_NAME = "message"
# Characters a reader may take for < or > (NFKC maps the fullwidth and small forms).
_BRACKETS = str.maketrans(
    {
        "\u2039": "<",
        "\u203a": ">",
        "\u2329": "<",
        "\u232a": ">",
        "\u27e8": "<",
        "\u27e9": ">",
        "\u3008": "<",
        "\u3009": ">",
        "\u276e": "<",
        "\u276f": ">",
        "\u00ab": "<",
        "\u00bb": ">",
        "\u02c2": "<",
        "\u02c3": ">",
        "\u1438": "<",
        "\u1433": ">",
    }
)
# Letters of "message" that other scripts draw alike.
_LOOKALIKES = str.maketrans(
    {
        "\u0435": "e",  # Cyrillic e
        "\u0454": "e",
        "\u0430": "a",  # Cyrillic a
        "\u0455": "s",  # Cyrillic dze
        "\u0261": "g",  # script g
        "\u0581": "g",  # Armenian
        "\u043c": "m",  # Cyrillic em
        "\u03b1": "a",  # Greek alpha
        "\u03b5": "e",  # Greek epsilon
    }
)


def _skeleton(line: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKC", line).casefold()
    return "".join(folded.translate(_BRACKETS).translate(_LOOKALIKES).split())


def _imitates_fence(line: str) -> bool:
    skeleton = _skeleton(line) if not line.isascii() else "".join(line.lower().split())
    return any(
        mark in skeleton
        for mark in (f"<{_FENCE_NAME}", f"</{_FENCE_NAME}", f"{_FENCE_NAME}>", f"/{_FENCE_NAME}")
    )


def _defuse(line: str) -> str:
    """Make a line that looks like our fence plainly not one: its brackets become entities."""
    table = {ord("<"): "&lt;", ord(">"): "&gt;", ord("\uff1c"): "&lt;", ord("\uff1e"): "&gt;"}
    table.update({k: ("&lt;" if v == "<" else "&gt;") for k, v in _BRACKETS.items()})
    return line.translate(table)


def fence(inside: str, token: str | None = None) -> tuple[str, str, str]:
    """(opening line, framed text, closing line) for untrusted text.

    The closing line carries a random token; any line of `inside` that imitates a fence is
    defused, so the text can neither close the frame nor fake a new one.
    """
    if token is None:
        import os

        token = os.urandom(6).hex()
    lines = [(_defuse(line) if _imitates_fence(line) else line) for line in inside.split("\n")]
    return f"<{_FENCE_NAME} {token}>", "\n".join(lines), f"</{_FENCE_NAME} {token}>"
