"""The idle waiter (asyncRewake Stop hook): one per session, asleep until mail, exit 2 with the
headers, gone when the session is. Run as Claude Code runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from claudematrix.hooks._waiter import BUSY_GRACE_S, CHECK_S, revive_daemon, wanted
from claudematrix.local.layout import OFFLINE_FLAG, TURN_STATE, WAITER_PID
from claudematrix.local.markers import signal_new_mail
from support import wait_until
from support.hooks import (
    BODY,
    POLL_TIMEOUT_READABLE,
    PYTHON,
    RUN,
    World,
    asleep_in_poll,
    asleep_until_news,
    hook_env,
    payload,
    poll_timeout_ms,
    run_hook,
    wakeups,
)

SLEEP = "import time; time.sleep(60)"


class Waiter:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-I", "-S", str(RUN), "stop-wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=hook_env(env),
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(payload("stop-wait", stop_hook_active=False)).encode())
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() must not flush it

    def finish(self, timeout: float = 10) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out.decode(), err.decode()

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def started(world: World, waiter: Waiter) -> None:
    """The waiter holds its lock and sleeps in poll() on its FIFO: the state it waits in."""
    pid_file = world.dir / WAITER_PID
    wait_until(
        lambda: pid_file.exists() and pid_file.read_text().strip() == str(waiter.proc.pid),
        10,
        "the waiter to take its lock",
        interval=0.005,
    )
    wait_until(
        lambda: asleep_until_news(waiter.proc.pid) or not waiter.running(),
        10,
        "the waiter to sleep in poll()",
        interval=0.005,
    )
    assert (world.dir / "wake.fifo").exists()


@pytest.fixture
def waiter(world: World) -> Iterator[Waiter]:
    w = Waiter()
    try:
        started(world, w)
        yield w
    finally:
        w.kill()


def test_new_mail_wakes_the_idle_session_with_headers(world: World, waiter: Waiter) -> None:
    (world.dir / TURN_STATE).write_bytes(b"idle")
    sent = time.perf_counter()
    world.mail("wake up")
    code, out, err = waiter.finish()
    latency_ms = (time.perf_counter() - sent) * 1000
    assert code == 2 and out == ""
    assert '"wake up"' in err and "ClaudeMatrix: 1 new message" in err and BODY not in err
    assert world.flags() == [(1, 0, 1)]
    assert (world.dir / TURN_STATE).read_bytes() == b"busy"  # the wake-up starts a turn
    assert latency_ms < 500, f"commit -> waiter exit took {latency_ms:.0f} ms"
    print(f"signal -> waiter exit: {latency_ms:.1f} ms")


def test_one_waiter_per_session(world: World, waiter: Waiter) -> None:
    second = Waiter()
    code, out, err = second.finish(timeout=10)
    assert (code, out, err) == (0, "", "")
    assert waiter.running()


def test_waiting_costs_no_cpu(world: World, waiter: Waiter) -> None:
    """It sleeps in the kernel, in poll() with the CHECK_S timeout: nothing runs until mail,
    the end of the session, or the re-check that the session still exists."""
    pid = waiter.proc.pid
    assert asleep_in_poll(pid) and waiter.running()
    if POLL_TIMEOUT_READABLE:
        assert poll_timeout_ms(pid) == CHECK_S * 1000 == 30_000


def test_a_wake_without_mail_keeps_waiting(world: World, waiter: Waiter) -> None:
    slept = wakeups(waiter.proc.pid)
    fifo = os.open(world.dir / "wake.fifo", os.O_WRONLY | os.O_NONBLOCK)
    os.write(fifo, b"!!!")
    os.close(fifo)
    wait_until(
        lambda: (
            not waiter.running()
            or (wakeups(waiter.proc.pid) > slept and asleep_until_news(waiter.proc.pid))
        ),
        10,
        "the waiter to wake up and go back to sleep",
    )
    assert waiter.running()
    world.mail("now real")
    code, _out, err = waiter.finish()
    assert code == 2 and '"now real"' in err


def test_mail_already_announced_in_band_does_not_wake(world: World, waiter: Waiter) -> None:
    """While a turn runs, PostToolUse says it first and the waiter stays asleep: it goes back
    to its long sleep without a word, and later mail wakes it with that mail alone."""
    pid = waiter.proc.pid
    (world.dir / TURN_STATE).write_bytes(b"busy")
    slept = wakeups(pid)
    world.mail("said in band")
    assert '"said in band"' in run_hook("post-tool-use").context
    wait_until(
        lambda: not waiter.running() or (wakeups(pid) > slept and asleep_until_news(pid)),
        BUSY_GRACE_S + 10,
        "the waiter to go back to its long sleep",
    )
    assert waiter.running()
    assert world.flags() == [(1, 0, 1)]
    (world.dir / TURN_STATE).write_bytes(b"idle")  # the turn ended; then more mail
    world.mail("said by the waiter")
    code, _out, err = waiter.finish()
    assert code == 2 and '"said by the waiter"' in err and "said in band" not in err
    assert world.flags() == [(1, 0, 1), (2, 0, 1)]


def test_busy_session_gets_the_mail_after_a_grace(world: World, waiter: Waiter) -> None:
    """A turn that never reaches a hook (a long tool call, an interrupt) still hears of it."""
    (world.dir / TURN_STATE).write_bytes(b"busy")
    sent = time.monotonic()
    world.mail("nobody else said it")
    code, _out, err = waiter.finish(timeout=BUSY_GRACE_S + 10)
    assert code == 2 and '"nobody else said it"' in err
    assert time.monotonic() - sent >= BUSY_GRACE_S - 0.1


def test_stop_hands_pending_mail_to_the_waiter(world: World, waiter: Waiter) -> None:
    """stop_hook_active: the Stop hook does not block again; the waiter wakes the session."""
    (world.dir / TURN_STATE).write_bytes(b"busy")
    world.mail("late in the turn")
    assert run_hook("stop", payload("stop", stop_hook_active=True)).stdout == ""
    code, _out, err = waiter.finish(timeout=BUSY_GRACE_S)
    assert code == 2 and '"late in the turn"' in err


def test_session_end_stops_the_waiter(world: World, waiter: Waiter) -> None:
    ran = run_hook("session-end", payload("session-end", reason="clear"))
    assert ran.code == 0 and ran.seconds < 1.0
    assert waiter.finish(timeout=5) == (0, "", "")
    assert (world.dir / OFFLINE_FLAG).exists()


def test_sigterm_from_claude_code_ends_it(world: World, waiter: Waiter) -> None:
    waiter.proc.terminate()
    code, _out, _err = waiter.finish(timeout=5)
    assert code != 2
    successor = Waiter()  # the lock went with it: the next Stop gets a waiter
    try:
        started(world, successor)
        assert successor.running()
    finally:
        successor.kill()


def test_it_ends_when_claude_code_is_gone(world: World) -> None:
    fake_claude = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        w = Waiter({"CLAUDE_PID": str(fake_claude.pid)})
        started(world, w)
        fake_claude.kill()
        fake_claude.wait()
        assert w.finish(timeout=5)[0] == 0
    finally:
        fake_claude.kill()
        fake_claude.wait()


def test_it_ends_when_a_stream_json_input_closes(world: World) -> None:
    """claude -p --input-format stream-json waits for background hooks after its stdin
    closes, so the waiter must notice the close or it would hold the process open."""
    fake_claude = subprocess.Popen(["sleep", "60"], stdin=subprocess.PIPE)
    try:
        w = Waiter({"CLAUDE_PID": str(fake_claude.pid), "CLAUDE_CODE_SESSION_ATTENDED": "0"})
        started(world, w)  # asleep in poll(), on the open pipe among the rest
        assert w.running()
        assert fake_claude.stdin is not None
        fake_claude.stdin.close()
        assert w.finish(timeout=5)[0] == 0
    finally:
        fake_claude.kill()
        fake_claude.wait()


def test_wanted_only_where_someone_can_be_woken(world: World) -> None:
    def proc(*args: str) -> subprocess.Popen[bytes]:
        # A stand-in for Claude Code whose command line carries these arguments.
        p = subprocess.Popen([PYTHON, "-I", "-S", "-c", SLEEP, *args])
        cmdline = Path(f"/proc/{p.pid}/cmdline")
        wait_until(lambda: cmdline.read_bytes(), 5, "the stand-in's command line")
        return p

    cases = [
        ((), {"CLAUDE_CODE_SESSION_ATTENDED": "1"}, True),
        (("-p", "hello"), {"CLAUDE_CODE_SESSION_ATTENDED": "0"}, False),
        (("--print", "hello"), {}, False),
        (("-p", "--input-format", "stream-json"), {"CLAUDE_CODE_SESSION_ATTENDED": "0"}, True),
        (("-p", "--input-format=stream-json"), {}, True),
        (("--resume", "x"), {}, True),
        (("-p", "x"), {"CLAUDEMATRIX_IDLE_WAKE": "1"}, True),
        ((), {"CLAUDEMATRIX_IDLE_WAKE": "0", "CLAUDE_CODE_SESSION_ATTENDED": "1"}, False),
        ((), {"CLAUDEMATRIX_MESSAGING_SOCKET": "1", "CLAUDE_CODE_SESSION_ATTENDED": "1"}, False),
    ]
    for args, env, expected in cases:
        p = proc(*args)
        try:
            assert wanted(p.pid, env) is expected, (args, env)
        finally:
            p.kill()
            p.wait()
    # No procfs answer (gone process): only when Claude Code says a person is there.
    assert wanted(999_999_999, {"CLAUDE_CODE_SESSION_ATTENDED": "0"}) is False


def test_one_shot_print_gets_no_waiter(world: World) -> None:
    fake_claude = subprocess.Popen([PYTHON, "-I", "-S", "-c", SLEEP, "-p", "hi"])
    try:
        cmdline = Path(f"/proc/{fake_claude.pid}/cmdline")
        wait_until(lambda: cmdline.read_bytes(), 5, "the stand-in's command line")
        w = Waiter({"CLAUDE_PID": str(fake_claude.pid), "CLAUDE_CODE_SESSION_ATTENDED": "0"})
        assert w.finish(timeout=5) == (0, "", "")
        assert not (world.dir / WAITER_PID).exists()
    finally:
        fake_claude.kill()
        fake_claude.wait()


def test_signal_new_mail_reaches_a_waiter_fast(world: World, waiter: Waiter) -> None:
    (world.dir / TURN_STATE).write_bytes(b"idle")
    ids = world.mail("quick", signal=False)
    t0 = time.perf_counter()
    signal_new_mail(world.dir, max(ids))
    code, _out, _err = waiter.finish()
    assert code == 2
    assert (time.perf_counter() - t0) * 1000 < 300


def test_a_daemon_that_died_is_started_again_one_stopped_on_purpose_is_not(
    world: World,
) -> None:
    """The daemon writes daemon.pid and removes it when it stops cleanly: a record left
    behind means it died, and the idle waiter starts it again (the shim would too)."""
    from claudematrix.daemon import stop
    from claudematrix.thin import link
    from support.daemon import daemon_pids, stop_daemons

    home = world.home
    try:
        revive_daemon(str(world.dir))  # never ran: nothing to revive
        assert not link.answers(str(home)) and not daemon_pids(home)
        (home / "daemon.pid").write_text('{"pid": 999999999}\n')  # died, record left
        revive_daemon(str(world.dir))
        assert link.answers(str(home)) and len(daemon_pids(home)) == 1
        assert stop(home)  # on purpose: the record goes with it
        assert not (home / "daemon.pid").exists()
        revive_daemon(str(world.dir))
        assert not link.answers(str(home))
    finally:
        stop_daemons(home)
