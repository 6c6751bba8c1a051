"""claudematrix.local.markers: the marker files that let a hook decide without the store,
and the signal the sync loop gives after each commit of new mail."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from claudematrix.local.layout import ANNOUNCED_MARKER, MAIL_MARKER, TURN_STATE
from claudematrix.local.markers import has_new_mail, signal_new_mail
from support.hooks import BODY, World


def test_markers_decide_without_the_store(world: World) -> None:
    assert not has_new_mail(str(world.dir))  # no mail marker yet
    world.mail()
    assert has_new_mail(str(world.dir))  # no announced marker yet
    announced = world.dir / ANNOUNCED_MARKER
    announced.touch()
    mail_ns = (world.dir / MAIL_MARKER).stat().st_mtime_ns
    os.utime(announced, ns=(mail_ns, mail_ns))
    assert has_new_mail(str(world.dir)), "equal mtimes (one clock tick) must look again"
    os.utime(announced, ns=(mail_ns + 1, mail_ns + 1))
    assert not has_new_mail(str(world.dir))


def test_notify_without_a_waiter_never_blocks(world: World) -> None:
    started = time.perf_counter()
    signal_new_mail(world.dir, 7)  # no FIFO yet
    os.mkfifo(world.dir / "wake.fifo", 0o600)
    signal_new_mail(world.dir, 8)  # a FIFO nobody reads (ENXIO)
    assert time.perf_counter() - started < 0.5
    assert int((world.dir / MAIL_MARKER).read_text()) == 8
    signal_new_mail(world.dir / "missing", 9)  # no identity dir: ignored


def test_messaging_socket_nudge_is_opt_in_and_only_when_idle(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opt-in extra: the sync loop starts a turn in an idle session through Claude Code's
    messaging socket, carrying no header and no body (UserPromptSubmit says the headers)."""
    import socket
    import threading

    from claudematrix.local.markers import NUDGE_TEXT, messaging_socket_enabled

    path = str(tmp_path / "cc.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    server.settimeout(5)
    received: list[bytes] = []

    def accept_one() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while data.count(b"\n") < 2:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            received.append(data)

    monkeypatch.setenv("CLAUDE_CODE_MESSAGING_SOCKET", path)
    monkeypatch.setenv("CLAUDE_CODE_MESSAGING_TOKEN", "tok123")
    assert not messaging_socket_enabled()
    ids = world.mail(signal=False)
    signal_new_mail(world.dir, max(ids))  # not enabled: no connection
    monkeypatch.setenv("CLAUDEMATRIX_MESSAGING_SOCKET", "1")
    (world.dir / TURN_STATE).write_bytes(b"busy")
    signal_new_mail(world.dir, max(ids))  # busy: the in-band hooks say it
    (world.dir / TURN_STATE).write_bytes(b"idle")
    thread = threading.Thread(target=accept_one)
    thread.start()
    signal_new_mail(world.dir, max(ids))
    thread.join(10)
    server.close()
    assert len(received) == 1
    auth, user = (json.loads(line) for line in received[0].splitlines())
    assert auth == {"type": "auth", "token": "tok123"}
    assert user == {"type": "user", "message": {"role": "user", "content": NUDGE_TEXT}}
    assert BODY not in received[0].decode() and "Review request" not in received[0].decode()
    assert (world.dir / TURN_STATE).read_bytes() == b"busy"
    assert world.flags() == [(1, 0, 0)], "the nudge claims nothing: UserPromptSubmit will"
