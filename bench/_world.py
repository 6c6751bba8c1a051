"""What every benchmark shares: the run's settings, raw users, and session processes."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._env import PYTHON, BenchEnv, BenchError
from bench._proc import Peer
from bench._rawpeer import Raw, register

__all__ = ["Ctx", "OurPeer"]


@dataclass
class OurPeer:
    """A session (bench/_sessionpeer.py driving its shim); the daemon holds its identity."""

    peer: Peer
    name: str
    user_id: str
    lobby: str
    dir: Path
    shim_pid: int


@dataclass
class Ctx:
    env: BenchEnv
    quick: bool
    log: Callable[[str], None]
    notes: list[str] = field(default_factory=list)
    _secret: str | None = None

    @property
    def config(self) -> Any:
        return self.env.config()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env.port}"

    def identity_dir(self, name: str) -> Path:
        return self.env.home / "identities" / name

    def secret(self) -> str:
        if self._secret is None:
            from claudematrix import homeserver

            self._secret = homeserver.registration_shared_secret(self.config)
        return self._secret

    def cli(self, env: dict[str, str], *args: str, who: str = "", timeout: float = 240.0) -> str:
        """`claudematrix <args>` with the bench's environment plus `env`; its stdout, or
        BenchError with its last words."""
        proc = subprocess.run(
            [PYTHON, "-m", "claudematrix", *args],
            env=self.env.child_env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            where = f"{who}: " if who else ""
            raise BenchError(f"{where}claudematrix {' '.join(args)}: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def raw_user(self, prefix: str) -> Raw:
        return register(self.url, self.secret(), f"{prefix}-{secrets.token_hex(3)}")

    def raw_peer(self, name: str, role: str, user: Raw) -> Peer:
        spec: dict[str, object] = {
            "role": role,
            "url": self.url,
            "token": user.token,
            "user": user.user_id,
        }
        return Peer.start(self.env, name, [PYTHON, "-I", str(_BENCH / "_rawpeer.py")], spec)

    def raw_peers_ready(self, peers: list[Peer], timeout: float = 60.0) -> None:
        for peer in peers:
            peer.expect("ready", timeout, "ready")

    def our_peers(
        self,
        names: list[str],
        *,
        trust: tuple[str, ...] = (),
        timeout: float = 120.0,
    ) -> list[OurPeer]:
        """Start sessions (in parallel) and wait until each is connected and syncing; each
        trusts the users in `trust` (raw senders whose invitations it must join)."""
        spec = {"trust": list(trust)}
        started = [
            Peer.start(
                self.env, name, [PYTHON, "-m", "bench._sessionpeer"], {"identity": name, **spec}
            )
            for name in names
        ]
        ready: list[OurPeer] = []
        for name, peer in zip(names, started, strict=True):
            fields = peer.expect("ready", timeout, "the session to connect")
            if len(fields) < 4 or fields[1] == "-":
                raise BenchError(f"{name} came up without an account: {fields}")
            ready.append(
                OurPeer(peer, name, fields[1], fields[2], self.identity_dir(name), int(fields[3]))
            )
        return ready

    def stop(self, peers: list[Peer] | list[OurPeer]) -> None:
        procs = [p.peer.proc if isinstance(p, OurPeer) else p.proc for p in peers]
        self.env.stop_procs(procs)


_BENCH = Path(__file__).resolve().parent
