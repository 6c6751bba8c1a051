"""The idle waiter: an `asyncRewake` Stop hook that sleeps until new mail, then exits 2.

Claude Code runs it in the background after every turn; when it exits 2 its stderr (the
headers) reaches Claude and an idle session wakes up and starts a turn. Rules:
- one waiter per session: `waiter.lock` (flock); a second one exits 0 at once;
- no CPU while waiting: it blocks in poll() on `wake.fifo` (opened read-write, so it never
  sees EOF; claudematrix.local.markers.signal_new_mail writes a byte after each commit of
  new mail), on a pidfd of
  the Claude Code process (Linux), and, for `claude -p --input-format stream-json`, on the
  hang-up of Claude Code's stdin; a 30 s timeout only re-checks that the session still exists;
- it ends with the session: Claude Code gone, its input closed, the `offline` flag that
  SessionEnd writes, or SIGTERM (Claude Code sends it on exit; SessionEnd as a fallback);
- while a turn runs (turn.state "busy") PostToolUse and Stop announce new mail in-band, so the
  waiter gives them a short grace before it says the mail itself;
- a daemon that died is started again (its record left behind says so): at the start and on
  each quiet 30 s; the session's shim does the same as soon as it notices;
- never in one-shot `claude -p "..."`: Claude Code waits for background hooks before it exits,
  so a waiter there would hold the process open (seen with 2.1.330).
"""

from __future__ import annotations

import fcntl
import os
import select
import stat
import sys
import time

from claudematrix.hooks._announce import announce
from claudematrix.local.layout import (
    DAEMON_PID,
    OFFLINE_FLAG,
    TURN_STATE,
    WAITER_LOCK,
    WAITER_PID,
    WAKE_FIFO,
)
from claudematrix.local.markers import has_new_mail, set_turn

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["wait", "wanted", "revive_daemon", "IDLE_WAKE_ENV", "CHECK_S", "BUSY_GRACE_S"]

IDLE_WAKE_ENV = "CLAUDEMATRIX_IDLE_WAKE"  # "0" turns the waiter off, "1" forces it on
CHECK_S = 30.0  # while nothing happens: re-check that the session still exists
BUSY_GRACE_S = 2.0  # while a turn runs: how long in-band hooks get to announce first
_RECHECK_S = 0.25
_OFF = ("0", "off", "false", "no")
_ON = ("1", "on", "true", "yes")


def _claude_pid() -> int:
    try:
        return int(os.environ.get("CLAUDE_PID", ""))
    except ValueError:
        return os.getppid()  # hooks.json execs us, so the parent is Claude Code


def _cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return args or None  # empty: a zombie, or a process not yet past exec


def _stream_json_input(args: list[str]) -> bool:
    for i, arg in enumerate(args):
        if arg == "--input-format=stream-json":
            return True
        if arg == "--input-format" and args[i + 1 : i + 2] == ["stream-json"]:
            return True
    return False


def wanted(claude_pid: int, environ: dict[str, str] | None = None) -> bool:
    """Should this session have an idle waiter? Interactive and stream-json sessions: yes.
    One-shot `claude -p` (it would wait for us before exiting): no."""
    env = os.environ if environ is None else environ
    choice = env.get(IDLE_WAKE_ENV, "").strip().lower()
    if choice in _OFF:
        return False
    if choice in _ON:
        return True
    from claudematrix.local.markers import messaging_socket_enabled

    if messaging_socket_enabled(env):
        return False  # the sync loop wakes idle sessions through the messaging socket
    attended = env.get("CLAUDE_CODE_SESSION_ATTENDED", "")
    if attended == "1":
        return True
    args = _cmdline(claude_pid)
    if args is None:  # no procfs: only when Claude Code says a person is there
        return attended == ""
    if "-p" not in args and "--print" not in args:
        return True
    return _stream_json_input(args)


def _open_fifo(identity: str) -> int:
    path = identity + "/" + WAKE_FIFO
    try:
        if not stat.S_ISFIFO(os.lstat(path).st_mode):
            os.unlink(path)
            raise FileNotFoundError(path)
    except FileNotFoundError:
        try:  # noqa: SIM105 - contextlib costs an import
            os.mkfifo(path, 0o600)
        except FileExistsError:
            pass
    # Read-write: the FIFO always has a writer (us), so poll() never reports EOF/hang-up.
    return os.open(path, os.O_RDWR | os.O_NONBLOCK)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None or pid <= 1:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _stdin_hangup_fd(pid: int) -> int | None:
    """Claude Code's stdin pipe, for noticing when its writer closes (stream-json sessions):
    Claude Code then waits for background hooks before exiting, so the waiter must go."""
    path = f"/proc/{pid}/fd/0"
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return None
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None


def _idle(identity: str) -> bool:
    try:
        with open(identity + "/" + TURN_STATE, "rb") as handle:
            return handle.read().strip() != b"busy"
    except OSError:
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours to signal
    return True


def revive_daemon(identity: str) -> None:
    """Start the machine's daemon again if it died (its record is still there): then mail
    keeps arriving while the session idles, even if its shim has not noticed yet. A daemon
    stopped on purpose removed its record and stays stopped. Fails open."""
    home = os.path.dirname(os.path.dirname(identity))
    if not os.path.exists(home + "/" + DAEMON_PID):
        return
    try:
        from claudematrix.thin import link

        link.ensure_daemon(home=home)
    except Exception:  # noqa: BLE001 - the waiter's job is the wake-up, whatever happens here
        return


def wait(identity: str, data: dict[str, Any]) -> int:
    """Block until new mail (exit 2, headers on stderr) or the end of the session (exit 0)."""
    if data.get("agent_id"):
        return 0
    claude = _claude_pid()
    if not wanted(claude):
        return 0
    os.makedirs(identity, mode=0o700, exist_ok=True)
    lock = os.open(identity + "/" + WAITER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return 0  # this session has its waiter already
    pid_path = identity + "/" + WAITER_PID
    with open(pid_path + ".tmp", "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(pid_path + ".tmp", pid_path)

    revive_daemon(identity)
    fifo = _open_fifo(identity)
    poller = select.poll()
    poller.register(fifo, select.POLLIN)
    ends: set[int] = set()
    pidfd = _pidfd(claude)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
        ends.add(pidfd)
    if os.environ.get("CLAUDE_CODE_SESSION_ATTENDED") != "1":
        hangup = _stdin_hangup_fd(claude)
        if hangup is not None:
            poller.register(hangup, 0)  # only POLLHUP/POLLERR: never reads Claude's input
            ends.add(hangup)
    parent = os.getppid()
    pending_since: float | None = None
    while True:
        if os.path.exists(identity + "/" + OFFLINE_FLAG) or os.getppid() != parent:
            return 0
        if pidfd is None and not _alive(claude):
            return 0
        if has_new_mail(identity):
            now = time.monotonic()
            pending_since = now if pending_since is None else pending_since
            if _idle(identity) or now - pending_since >= BUSY_GRACE_S:
                block = announce(identity)
                if block:
                    set_turn(identity, b"busy")  # the wake-up starts a turn
                    sys.stderr.write(block + "\n")
                    sys.stderr.flush()
                    return 2
                pending_since = None
        else:
            pending_since = None
        timeout = CHECK_S if pending_since is None else _RECHECK_S
        ready = poller.poll(int(timeout * 1000))
        if not ready and pending_since is None:
            revive_daemon(identity)
        for fd, _events in ready:
            if fd == fifo:
                _drain(fifo)
            elif fd in ends:
                return 0
