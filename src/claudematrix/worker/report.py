"""What a worker says in a room: its progress, the end of a run, a refusal. Markdown (the
Service renders it as HTML beside the plain body, for people's clients)."""

from __future__ import annotations

from claudematrix.worker.claude_run import Progress

__all__ = ["progress_text", "final_parts", "refusal_text", "PART_BYTES"]

PART_BYTES = 24 * 1024  # one message's share of a long answer, well inside an event
_PROGRESS_BYTES = 8 * 1024
_TOOLS_SHOWN = 12


def refusal_text(worker: str) -> str:
    return (
        f"Not run: you may not command the worker {worker}. Its owner can allow you "
        f"(`claudematrix worker start ... --allow <your Matrix ID>`)."
    )


def progress_text(progress: Progress, outcome: str | None) -> str:
    """The progress message: state, the tool calls so far, the latest text (its end)."""
    head = f"**{outcome}**" if outcome else "**running**"
    lines = [head]
    tools = progress.tools[-_TOOLS_SHOWN:]
    if len(progress.tools) > len(tools):
        lines.append(f"- ... {len(progress.tools) - len(tools)} earlier tool calls")
    lines += [f"- `{t}`" for t in tools]
    if progress.text:
        lines += ["", _tail(progress.text, _PROGRESS_BYTES)]
    return "\n".join(lines)


def final_parts(progress: Progress, outcome: str, seconds: float) -> list[str]:
    """The end of a run: outcome, duration and cost (when reported), then the answer, split
    at line ends into messages of at most PART_BYTES, never cut."""
    facts = [f"**{outcome}** in {seconds:.1f} s"]
    if progress.cost_usd is not None:
        facts.append(f"cost ${progress.cost_usd:.4f}")
    if progress.tools:
        facts.append(f"{len(progress.tools)} tool calls")
    head = " · ".join(facts)
    answer = progress.result or progress.text
    if outcome not in ("done",) and progress.stray:
        answer = (
            (answer + "\n\n" if answer else "") + "```\n" + progress.stray[-1][-2000:] + "\n```"
        )
    parts = _split(answer) if answer else []
    if len(parts) <= 1:
        return [head + ("\n\n" + parts[0] if parts else "")]
    total = len(parts)
    return [f"{head} (part 1 of {total})\n\n{parts[0]}"] + [
        f"(part {n} of {total})\n\n{part}" for n, part in enumerate(parts[1:], start=2)
    ]


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > PART_BYTES:  # one huge line: split inside it
            cut = _fit(line)
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:cut])
            line = line[cut:]
        if len((current + line).encode()) > PART_BYTES:
            parts.append(current)
            current = ""
        current += line
    if current:
        parts.append(current)
    return parts


def _fit(line: str) -> int:
    """How many characters of `line` fit in PART_BYTES."""
    low, high = 1, len(line)
    while low < high:
        mid = (low + high + 1) // 2
        if len(line[:mid].encode()) <= PART_BYTES:
            low = mid
        else:
            high = mid - 1
    return low


def _tail(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return "..." + data[-limit:].decode(errors="ignore")
