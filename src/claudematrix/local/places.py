"""Which paired machine a remote party is on: "remote (beta)" rather than "remote".

Shared by the hooks (standard library only, on their hot path) and the service, so a header
names the machine the same way everywhere. The names come from <state dir>/machines.json,
which only the person's `claudematrix machine add` writes; a name there is one word of
letters, digits, '.', '_' and '-' (claudematrix.federation.card).
"""

from __future__ import annotations

from claudematrix.local import layout

__all__ = ["paired_file", "machine_names", "machine_of", "with_machine"]

# The places (values of claudematrix.types.Audience) that can be on another machine.
_REMOTE_PLACES = ("remote", "trusted remote")


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


def machine_of(where: str, user: str, names: dict[str, str]) -> str | None:
    """The paired machine `user` is on, if `where` is remote and that is one."""
    if not names or where not in _REMOTE_PLACES:
        return None
    return names.get(user.partition(":")[2])


def with_machine(where: str, user: str, names: dict[str, str]) -> str:
    """`where`, with the paired machine `user` is on when that is another machine."""
    machine = machine_of(where, user, names)
    return f"{where} ({machine})" if machine else where
