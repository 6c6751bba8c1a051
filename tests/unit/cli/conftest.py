"""The `claudematrix` command run in this process (claudematrix.cli.main, as the console
script runs it), against a homeserver that is not there: what needs no homeserver."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from claudematrix.cli import main
from support import free_port


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one line a failed command leaves on stderr (nothing on stdout)."""
        shown = f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"
        assert self.code != 0 and self.out == "", shown
        lines = self.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("claudematrix: "), shown
        return lines[0]


Claudematrix = Callable[..., Ran]


@pytest.fixture
def claudematrix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Claudematrix:
    """`claudematrix(*args, stdin="")`: exit code, stdout and stderr of one run. The
    homeserver is an external URL on a closed loopback port, and the run is outside Claude
    Code (no CLAUDECODE; the test runner has no `claude` ancestor)."""
    monkeypatch.setenv("CLAUDEMATRIX_HOMESERVER", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("CLAUDECODE", raising=False)

    def run(*args: str, stdin: str = "") -> Ran:
        monkeypatch.setattr(sys, "argv", ["claudematrix", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return Ran(code, out, err)

    return run
