"""Which paired machine a remote party is on ("remote (beta)" rather than "remote"), and
whether the person trusts that whole machine (then its sessions are "trusted remote").

Shared by the hooks (standard library only, on their hot path) and the service, so a header
names and places a sender the same way everywhere. Both come from <state dir>/machines.json,
which only the person's `claudematrix machine add|trust` writes; a name there is one word of
letters, digits, '.', '_' and '-' (claudematrix.federation.card).
"""

from __future__ import annotations

from claudematrix.local import layout

__all__ = [
    "paired_file",
    "machine_names",
    "trusted_servers",
    "trusted_place",
    "machine_of",
    "with_machine",
]

# The places (values of claudematrix.types.Audience) that can be on another machine.
_REMOTE = "remote"
_TRUSTED_REMOTE = "trusted remote"
_REMOTE_PLACES = (_REMOTE, _TRUSTED_REMOTE)


def paired_file(state_dir: str) -> str:
    return state_dir.rstrip("/") + "/" + layout.PAIRED_MACHINES


def machine_names(data: object) -> dict[str, str]:
    """server name -> machine name, from machines.json as loaded; malformed entries skipped."""
    entries = data.get("machines") if isinstance(data, dict) else None
    names: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            server, name = entry.get("server_name"), entry.get("name")
            if isinstance(server, str) and isinstance(name, str):
                names[server] = name
    return names


def trusted_servers(data: object) -> frozenset[str]:
    """The server names of the paired machines the person trusts as a whole."""
    entries = data.get("machines") if isinstance(data, dict) else None
    return frozenset(
        entry["server_name"]
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, dict)
        and entry.get("trusted") is True
        and isinstance(entry.get("server_name"), str)
    )


def trusted_place(where: str, user: str, trusted: frozenset[str]) -> str:
    """`where` as the rooms and trust list say, raised to "trusted remote" for a session of
    a machine the person trusts as a whole."""
    if where == _REMOTE and trusted and user.partition(":")[2] in trusted:
        return _TRUSTED_REMOTE
    return where


def machine_of(where: str, user: str, names: dict[str, str]) -> str | None:
    """The paired machine `user` is on, if `where` is remote and that is one."""
    if not names or where not in _REMOTE_PLACES:
        return None
    return names.get(user.partition(":")[2])


def with_machine(where: str, user: str, names: dict[str, str]) -> str:
    """`where`, with the paired machine `user` is on when that is another machine."""
    machine = machine_of(where, user, names)
    return f"{where} ({machine})" if machine else where
