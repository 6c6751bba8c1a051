"""The CLI's quick path: which command lines go to the daemon, and when they never do."""

from __future__ import annotations

import pytest

from claudematrix.thin import cli, link


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["inbox"], "inbox"),
        (["--as", "alice", "send", "bob", "hi"], "send"),
        (["--as=alice", "read", "3"], "read"),
        (["status", "--json"], "status"),
        (["contacts", "--all"], "contacts"),
        (["mode", "public"], None),  # asks the person: never through the daemon
        (["trust", "@x:y"], None),
        (["send", "bob", "--stdin"], None),  # this process's stdin
        (["inbox", "--help"], None),
        (["--version"], None),
        (["--weird", "inbox"], None),  # an option we do not know: click says so, here
        ([], None),
        (["daemon", "stop"], None),
    ],
)
def test_which_command_lines_the_daemon_runs(argv: list[str], command: str | None) -> None:
    assert cli.forwarded_command(argv) == command


def test_off_means_never_the_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.DAEMON_ENV, "off")

    def no_daemon(*_a: object, **_k: object) -> bool:
        raise AssertionError("the daemon was asked for")

    monkeypatch.setattr(link, "ensure_daemon", no_daemon)
    assert cli.forward(["inbox"]) is None


def test_a_daemon_that_cannot_start_leaves_the_command_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_a: object, **_k: object) -> bool:
        raise link.DaemonUnavailable("it exited at start")

    monkeypatch.delenv(cli.DAEMON_ENV, raising=False)
    monkeypatch.setattr(link, "ensure_daemon", broken)
    assert cli.forward(["inbox"]) is None
