"""The CLI through the machine's daemon: the same answers as in a process of its own, one
daemon however many commands start at once, and a command that is not the daemon's kept
in the caller's process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.daemon import daemon_pids

from .conftest import SharedHomeserver
from .harness import Machine, machine_two, new_tag, project_dir

pytestmark = pytest.mark.integration

HERE = {"CLAUDEMATRIX_DAEMON": "off"}


def _json(
    m: Machine, *args: str, as_: str, project: Path, env: dict[str, str] | None = None
) -> Any:
    return json.loads(m.run(*args, "--json", as_=as_, project=project, env=env).stdout)


def test_daemon_and_own_process_answer_alike(m1: Machine, tmp_path: Path) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projC{tag}")
    alice, bob = f"alice{tag}", f"bob{tag}"
    m1.run("whoami", as_=alice, project=proj)
    m1.run("send", alice, f"hello {tag}", "--subject", f"s{tag}", as_=bob, project=proj)
    assert daemon_pids(m1.home), "the commands went through a daemon"
    for args in (["whoami"], ["inbox", "--all"], ["search", tag], ["contacts"]):
        through = _json(m1, *args, as_=alice, project=proj)
        here = _json(m1, *args, as_=alice, project=proj, env=HERE)
        assert through == here, args
    shown = m1.run("read", "1", as_=alice, project=proj).stdout
    assert f"hello {tag}" in shown
    assert _json(m1, "inbox", as_=alice, project=proj, env=HERE) == []  # read, for both


def test_errors_through_the_daemon_are_one_line(m1: Machine, tmp_path: Path) -> None:
    proj = project_dir(tmp_path, "projE")
    out = m1.run("read", "999", as_="nobody-here", project=proj, ok=False)
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("claudematrix: ")


def test_commands_starting_together_start_one_daemon(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    m3 = machine_two(shared_homeserver, tmp_path / "machine3")
    proj = project_dir(tmp_path, "projR")
    assert not daemon_pids(m3.home)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "claudematrix", "--as", f"racer{i}", "whoami"],
            env={**m3.env, "CLAUDE_PROJECT_DIR": str(proj)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    try:
        results = [p.communicate(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 6, results
    assert all(f"racer{i}" in out for i, (out, _err) in enumerate(results))
    assert len(daemon_pids(m3.home)) == 1


def test_a_command_that_asks_the_person_stays_in_its_own_process(
    m1: Machine, tmp_path: Path
) -> None:
    """`mode public` may need the person's answer on this terminal: never the daemon's."""
    proj = project_dir(tmp_path, "projM")
    name = f"moder{new_tag()}"
    out = m1.run("mode", "public", as_=name, project=proj, stdin="n\n")
    assert out.stdout == "mode stays private\n"  # the person's "n", read from this stdin
    assert _json(m1, "whoami", as_=name, project=proj)["mode"] == "private"
