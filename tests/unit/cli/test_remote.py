"""A command run in the daemon for another process (claudematrix.cli.remote): the real click
command, its output captured for the caller alone, an identity the daemon holds served by its
live Service, and errors as the caller's one line and exit code."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from claudematrix.cli.remote import run_command
from claudematrix.ids import IdentityName, UserID
from claudematrix.service import Service, WhoAmI
from claudematrix.session_env import SessionEnv


@dataclass
class Live:
    """Stands for the daemon's connected Service of the identity it holds."""

    name: str

    def whoami(self) -> WhoAmI:
        return WhoAmI(
            self.name,
            UserID(f"@cc-{self.name}:x"),
            "live one",
            "private",
            "http://hs",
            "p",
            "",
            "h",
        )


def _held(name: IdentityName) -> Service | None:
    return Live(name) if name == "alice" else None  # type: ignore[return-value]


def test_a_held_identity_is_answered_by_its_live_service() -> None:
    code, out, err = asyncio.run(run_command(["--as", "alice", "whoami"], SessionEnv(), _held))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "@cc-alice:x  live one"


def test_output_goes_to_the_caller_only() -> None:
    async def both() -> list[tuple[int, str, str]]:
        return list(
            await asyncio.gather(
                *(run_command(["--as", "alice", "whoami"], SessionEnv(), _held) for _ in range(8))
            )
        )

    results = asyncio.run(both())
    assert all(r == results[0] for r in results)  # each got its own output, whole
    assert results[0][1].count("@cc-alice:x") == 1


def test_errors_are_the_callers_one_line_and_exit_code() -> None:
    code, out, err = asyncio.run(run_command(["--as", "../x", "whoami"], SessionEnv(), _held))
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("claudematrix: ")
    code, _out, err = asyncio.run(run_command(["nonsense"], SessionEnv(), _held))
    assert code == 2 and "No such command" in err
