"""What a worker says in a room: progress, the end of a run (split, never cut), a refusal."""

from __future__ import annotations

from claudematrix.worker.claude_run import Progress
from claudematrix.worker.report import PART_BYTES, final_parts, progress_text, refusal_text


def test_progress_shows_the_state_the_tool_calls_and_the_latest_text() -> None:
    progress = Progress(text="Reading the parser.", tools=["Bash: ls", "Read: src/p.py"])
    text = progress_text(progress, None)
    assert text.startswith("**running**")
    assert "- `Bash: ls`" in text and "- `Read: src/p.py`" in text
    assert text.endswith("Reading the parser.")
    many = Progress(tools=[f"Bash: echo {n}" for n in range(30)])
    shown = progress_text(many, "done")
    assert shown.startswith("**done**") and "18 earlier tool calls" in shown
    assert "echo 29" in shown and "echo 17`" not in shown


def test_the_end_says_outcome_duration_and_cost_then_the_answer() -> None:
    progress = Progress(result="All **green**.", cost_usd=0.0123, tools=["Bash: make test"])
    (only,) = final_parts(progress, "done", 12.34)
    assert only == "**done** in 12.3 s · cost $0.0123 · 1 tool calls\n\nAll **green**."


def test_a_failed_run_shows_what_the_cli_said() -> None:
    progress = Progress(stray=["Error: not logged in"])
    (only,) = final_parts(progress, "failed", 0.5)
    assert only.startswith("**failed** in 0.5 s") and "Error: not logged in" in only


def test_a_long_answer_is_split_at_line_ends_and_nothing_is_lost() -> None:
    lines = [f"line {n:05d} " + "x" * 90 for n in range(1000)]
    answer = "\n".join(lines)
    parts = final_parts(Progress(result=answer), "done", 1.0)
    assert len(parts) > 3
    assert parts[0].startswith(f"**done** in 1.0 s (part 1 of {len(parts)})")
    bodies = [p.split("\n\n", 1)[1] for p in parts]
    assert "".join(bodies) == answer
    assert all(len(b.encode()) <= PART_BYTES for b in bodies)
    assert all(b.endswith("\n") for b in bodies[:-1])  # cut at line ends only


def test_one_huge_line_is_split_inside_it_without_losing_a_character() -> None:
    answer = "é" * (PART_BYTES * 2)  # two bytes each
    bodies = [p.split("\n\n", 1)[1] for p in final_parts(Progress(result=answer), "done", 1)]
    assert "".join(bodies) == answer and all(len(b.encode()) <= PART_BYTES for b in bodies)


def test_a_refusal_says_how_to_be_allowed() -> None:
    assert "--allow" in refusal_text("w1") and "w1" in refusal_text("w1")
