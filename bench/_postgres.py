"""A throwaway PostgreSQL cluster for a test or a bench phase: its own data dir, a free
loopback port and a socket dir of its own, removed (and its server stopped) at the end, even
on failure. tests/support/postgres.py gives the tests this same module.

PostgreSQL refuses to run as root, so as root every server command runs as the `postgres`
system user (made by Debian's package, which scripts/setup-dev.sh installs).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench._env import free_port

__all__ = ["Postgres", "postgres_bindir", "throwaway_postgres"]

SUPERUSER = "postgres"


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them off PATH, per major version."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


class Postgres:
    """`root`: a new directory of its own; under /tmp, as the `postgres` user must reach it
    (pytest's own temporary directories are private to the user running the tests)."""

    def __init__(self, root: Path) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run scripts/setup-dev.sh")
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.port = free_port()
        self._as_other = os.geteuid() == 0

    def _argv(self, *argv: str) -> list[str]:
        return ["runuser", "-u", SUPERUSER, "--", *argv] if self._as_other else list(argv)

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._argv(*argv), capture_output=True, text=True, timeout=120, check=check
        )

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._as_other:
            shutil.chown(self.root, SUPERUSER)
            shutil.chown(self.sockets, SUPERUSER)
            self.root.chmod(0o755)  # the test process (root) reads the log
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            # Durable against a crash of the server (what the tests do to it), not of the OS.
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            mode,
            "-w",
            "-t",
            "30",
            "stop",
            check=False,
        )
        if done.returncode != 0 and self.pid() is not None:
            self.kill()

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill(self) -> None:
        """kill -9 the postmaster; its children exit when they find it gone."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (Path(f"/proc/{pid}").exists() or self._backends()):
            time.sleep(0.05)

    def _backends(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    env = (Path("/proc") / entry / "cmdline").read_bytes()
                    if b"postgres" in env and str(self.port).encode() in env:
                        found.append(int(entry))
        return found

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = self._run(
            str(self.bindir / "psql"),
            "-h",
            str(self.sockets),
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            statement,
        )
        return done.stdout.strip()

    def database(self, name: str, password: str, *, collate: str = "C") -> str:
        """A role and a database of that name (owned by it); its DSN over TCP."""
        self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        self.sql(
            f"CREATE DATABASE {name} OWNER {name} ENCODING 'UTF8' LC_COLLATE '{collate}' "
            f"LC_CTYPE '{collate}' TEMPLATE template0"
        )
        return f"postgresql://{name}:{password}@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="cm-postgres-"))
    server = Postgres(root)
    try:
        server.create()
        server.start()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
