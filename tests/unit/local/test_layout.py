"""One rule for the state dir, the same in a hook (strings, no `os`) and in the service."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from claudematrix.local import layout
from claudematrix.paths import identity_dir, state_dir
from support import SRC

# What a hook sees: a fresh interpreter without `os` (-I -S), the env passed in.
HOOK_VIEW = (
    "import sys; sys.path.insert(0, sys.argv[1]);"
    "from claudematrix.local import layout; print(layout.state_dir());"
    "print('os' in sys.modules)"
)


def in_a_hook(env: dict[str, str]) -> tuple[str, bool]:
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", HOOK_VIEW, str(SRC)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return out[0], out[1] == "True"


@pytest.mark.parametrize(
    ("setting", "home", "expected"),
    [
        (None, "/h/me", "/h/me/.claudematrix"),
        ("/srv/cm", "/h/me", "/srv/cm"),
        ("~", "/h/me", "/h/me"),
        ("~/state", "/h/me", "/h/me/state"),
        ("relative/dir", "/h/me", "relative/dir"),
        # ~user is that user's home from the password database, whatever $HOME says.
        (
            f"~{pwd.getpwuid(os.getuid()).pw_name}/cm",
            "/h/me",
            f"{pwd.getpwuid(os.getuid()).pw_dir}/cm",
        ),
    ],
)
def test_hooks_and_service_find_the_same_state_dir(
    setting: str | None, home: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"HOME": home, "PATH": os.environ.get("PATH", "")}
    if setting is not None:
        env[layout.STATE_ENV] = setting
    in_hook, os_loaded = in_a_hook(env)
    assert (in_hook, os_loaded) == (expected, False)
    for name in ("HOME", layout.STATE_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert layout.state_dir() == expected


def test_without_home_the_os_users_home_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.delenv(layout.STATE_ENV, raising=False)
    expected = pwd.getpwuid(os.getuid()).pw_dir.rstrip("/") + "/.claudematrix"
    assert layout.state_dir() == expected
    assert in_a_hook({"PATH": os.environ.get("PATH", "")})[0] == expected


def test_the_service_creates_what_the_layout_names(isolated_home: Path) -> None:
    made = identity_dir("someone")
    assert made == isolated_home / layout.IDENTITIES / "someone"
    assert str(made) == layout.identity_dir("someone")
    assert state_dir() == isolated_home
    assert made.stat().st_mode & 0o777 == 0o700 and isolated_home.stat().st_mode & 0o777 == 0o700
