"""Where things are: the state dir, the identity dirs and every file in them.

One rule for the state dir, used by the hooks (as strings, without `os` or `pathlib`: they
cost more than the rest of a hook's fast path) and by claudematrix.paths (which creates
dirs 0700 and writes files 0600 on top):
- `$CLAUDEMATRIX_HOME` if set: `~` and `~/...` are the home dir, `~user/...` that user's;
- else `<home>/.claudematrix`, where home is `$HOME`, or the OS user's home if HOME is unset.
"""

import sys

try:
    from posix import environ as _posix_environ
except ImportError:  # pragma: no cover - not a POSIX system
    _posix_environ = {}

__all__ = [
    "STATE_ENV",
    "IDENTITIES",
    "CONFIG",
    "HOOKS_LOG",
    "MACHINE_ROOMS_LOCK",
    "DAEMON_SOCKET",
    "DAEMON_LOCK",
    "DAEMON_START_LOCK",
    "DAEMON_PID",
    "DAEMON_LOG",
    "MACHINE",
    "ADMIN",
    "ACCOUNT",
    "ACCOUNT_LOCK",
    "STORE_DB",
    "SYNC_LOCK",
    "CRYPTO_DIR",
    "TASK_FILE",
    "MAIL_MARKER",
    "ANNOUNCED_MARKER",
    "WAKE_FIFO",
    "TURN_STATE",
    "OFFLINE_FLAG",
    "WAITER_LOCK",
    "WAITER_PID",
    "ROOMS_REGISTRY",
    "PAIRED_MACHINES",
    "PAIRED_CERTS",
    "env",
    "state_dir",
    "identity_dir",
    "is_identity_name",
]

STATE_ENV = "CLAUDEMATRIX_HOME"

# In the state dir.
IDENTITIES = "identities"
CONFIG = "config.json"
HOOKS_LOG = "hooks.log"
MACHINE_ROOMS_LOCK = "machine-rooms.lock"
DAEMON_SOCKET = "daemon.sock"  # the daemon's unix socket (0600): shims and the CLI connect
DAEMON_LOCK = "daemon.lock"  # held by the running daemon for its whole life
DAEMON_START_LOCK = "daemon-start.lock"  # held by whoever is starting one
DAEMON_PID = "daemon.pid"  # written by a running daemon, removed when it stops cleanly
PAIRED_MACHINES = "machines.json"  # the machines this one federates with (claudematrix.federation)
PAIRED_CERTS = "machines"  # their pinned TLS certificates, one PEM file each
DAEMON_LOG = "daemon.log"

# Identity dirs that are not sessions (not valid identity names: no --as can reach them).
MACHINE = "_machine"  # the machine account: owns the lobby, project and public rooms
ADMIN = "_admin"  # a homeserver admin, where this state dir holds the registration secret

# In an identity dir (<state dir>/identities/<name>/).
ACCOUNT = "account.json"  # its Matrix login (0600)
ACCOUNT_LOCK = "account.lock"
STORE_DB = "store.db"
SYNC_LOCK = "sync.lock"  # held by the one process that syncs this identity
CRYPTO_DIR = "crypto"  # the identity's encryption device, opened only under SYNC_LOCK
TASK_FILE = "task.json"  # "what I'm working on", folded in by the PostToolUse hook
MAIL_MARKER = "mail.marker"  # rewritten after new mail is committed (claudematrix.local.markers)
ANNOUNCED_MARKER = "announced.marker"  # touched by a hook before it claims mail
WAKE_FIFO = "wake.fifo"  # where the idle waiter blocks
TURN_STATE = "turn.state"  # "busy" while a turn runs, "idle" between turns
OFFLINE_FLAG = "offline"  # written by SessionEnd
WAITER_LOCK = "waiter.lock"  # one idle waiter per session
WAITER_PID = "waiter.pid"
ROOMS_REGISTRY = "rooms.json"  # the machine's own record of its rooms (in MACHINE's dir)


def env(name: str) -> str:
    """An environment variable ("" if unset). Through `os.environ` once something imported
    `os` (it alone sees later changes); before that, the interpreter's own copy."""
    os_module = sys.modules.get("os")
    if os_module is not None:
        return str(os_module.environ.get(name, ""))
    value = _posix_environ.get(name.encode())
    return value.decode(errors="surrogateescape") if value else ""


def _home(user: str = "") -> str:
    if not user:
        home = env("HOME")
        if home:
            return home
    import pwd  # only without HOME, or for ~user: rare

    try:
        entry = pwd.getpwnam(user) if user else pwd.getpwuid(_uid())
    except KeyError:
        return "~" + user  # as os.path.expanduser leaves an unknown user
    return entry.pw_dir


def _uid() -> int:
    from posix import getuid

    return getuid()


def _expand(path: str) -> str:
    if not path.startswith("~"):
        return path
    user, slash, rest = path[1:].partition("/")
    return _home(user).rstrip("/") + (slash + rest if slash else "")


def state_dir() -> str:
    """The state dir (never created here)."""
    override = env(STATE_ENV)
    if override:
        return _expand(override)
    return _home().rstrip("/") + "/.claudematrix"


# What an identity name may hold (claudematrix.ids.parse_identity_name), as bytes.
_NAME_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def is_identity_name(name: "str | bytes") -> bool:
    """Could `name` be an identity dir's name (no '/', no '..', at most 64 safe characters,
    not starting with '.', '-' or '_')? Checked before any path is made from a hook's input."""
    if isinstance(name, str):
        if not name.isascii():
            return False
        name = name.encode("ascii")
    return 0 < len(name) <= 64 and not name.strip(_NAME_CHARS) and name[:1] not in b".-_"


def identity_dir(name: str) -> str:
    """The dir of an identity (a session id, "owner", a name given with --as, or
    MACHINE/ADMIN); the caller has checked that `name` is safe as a file name."""
    return state_dir() + "/" + IDENTITIES + "/" + name
