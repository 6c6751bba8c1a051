"""Pairing this machine with others: its card, adding and removing a peer machine.

What the person does on each machine; the homeserver takes every change on at once (it is
restarted with the new whitelist and pinned certificates, which cuts a removed peer off).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claudematrix import homeserver
from claudematrix.config import Config
from claudematrix.errors import ConfigError, ConsentRequired, MachineNotPaired, PairingRefused
from claudematrix.federation.card import MachineCard, machine_label, parse_card
from claudematrix.federation.peers import (
    PairedMachine,
    add_peer,
    load_peers,
    remove_peer,
    set_peer_trusted,
)
from claudematrix.ids import UserID, server_name
from claudematrix.local.places import paired_file
from claudematrix.service.accounts import admin_credentials
from claudematrix.service.machine import close_trusted_machine_room

__all__ = [
    "PeerState",
    "peer_states",
    "both_ways",
    "own_card",
    "pair",
    "unpair",
    "paired_machines",
    "paired_machine_names",
    "trusted_machine_servers",
    "trust_machine",
    "untrust_machine",
    "require_reachable",
]

# (state dir) -> ((mtime_ns, size, inode) of machines.json, (server name -> machine name,
# server names of the machines trusted as a whole))
_VIEWS: dict[Path, tuple[tuple[int, int, int], tuple[dict[str, str], frozenset[str]]]] = {}

_NOT_READY = (
    "this machine is not set up to federate: run `claudematrix machine federate ADDRESS:PORT` "
    "with the address other machines reach it at (every session's history is kept); see "
    "docs/federation.md"
)


def _require_federation(config: Config) -> None:
    if not config.embedded:
        raise ConfigError(
            f"this machine uses the homeserver {config.homeserver_url}: pair machines there "
            "(its admin sets up federation), not here"
        )
    if config.federation is None:
        raise ConfigError(_NOT_READY)
    homeserver.own_server_name(config)  # a name others can reach, before anything starts


def own_card(config: Config, progress: Callable[[str], None] = lambda _m: None) -> MachineCard:
    """This machine's card; its homeserver is (re)started with the federation listener."""
    _require_federation(config)
    from claudematrix.federation.tls import fingerprint  # cryptography: only here

    homeserver.start(config, progress)
    homeserver.apply_settings(config, progress)
    paths = homeserver.homeserver_paths(config)
    assert config.federation is not None
    return MachineCard(
        name=machine_label(config.machine_name),
        server_name=homeserver.own_server_name(config),
        address=config.federation,
        fingerprint=fingerprint(paths.tls_cert_path.read_text()),
    )


def pair(
    config: Config, card_text: str, progress: Callable[[str], None] = lambda _m: None
) -> tuple[PairedMachine, bool]:
    """Pin the machine on `card_text`, once its certificate proves to be the card's.
    Returns (the machine, whether it is newly paired)."""
    _require_federation(config)
    from claudematrix.federation.tls import fetch_certificate, fingerprint

    card = parse_card(card_text)
    if str(card.server_name) == config.server_name:
        raise PairingRefused("that is this machine's own card: add it on the other machine")
    pem = fetch_certificate(card.server_name)
    seen = fingerprint(pem)
    if seen != card.fingerprint:
        raise PairingRefused(
            f"{card.server_name} presents a certificate ({seen[:19]}...) that is not the one "
            f"on the card ({card.fingerprint[:19]}...): a stale card, or another machine "
            "answering at that address; get a fresh card from the machine itself"
        )
    paired, new = add_peer(config.home, card, pem)
    if new:
        homeserver.apply_settings(config, progress)
    return paired, new


def both_ways(config: Config, paired: PairedMachine) -> bool | None:
    """Whether `paired` has added this machine too (its homeserver answers ours); None when
    that cannot be told yet (no session has run on this machine)."""
    return homeserver.peer_lets_us_in(config, paired.server_name)


def unpair(
    config: Config, which: str, progress: Callable[[str], None] = lambda _m: None
) -> PairedMachine:
    gone = remove_peer(config.home, which)
    if gone is None:
        known = ", ".join(p.name for p in load_peers(config.home)) or "none"
        raise ConfigError(f"no paired machine is called {which!r} (paired: {known})")
    homeserver.apply_settings(config, progress)
    return gone


def paired_machines(config: Config) -> list[PairedMachine]:
    return load_peers(config.home)


def require_reachable(config: Config, user: UserID) -> None:
    """Refuse, before anything is sent, mail for a user on a machine this one does not federate
    with: the embedded homeserver would accept it and never deliver it. (On an external
    homeserver, whom it federates with is its admin's business.)"""
    server = server_name(user)
    if not config.embedded or server == config.server_name:
        return
    if config.federation is None:
        raise MachineNotPaired(
            f"{user} is on another machine ({server}), and this one does not federate: see "
            "docs/federation.md to set up both machines and pair them"
        )
    if not any(peer.server_name == server for peer in load_peers(config.home)):
        raise MachineNotPaired(
            f"{user} is on a machine ({server}) not paired with this one: run `claudematrix "
            "machine card` on each and `claudematrix machine add <card>` with the other's"
        )


def paired_machine_names(config: Config) -> dict[str, str]:
    """server name -> machine name of the paired machines (headers ask for every message
    they show: read again only when the file changes)."""
    return _paired_view(config)[0]


def trusted_machine_servers(config: Config) -> frozenset[str]:
    """The server names of the paired machines the person trusts as a whole."""
    return _paired_view(config)[1]


def _paired_view(config: Config) -> tuple[dict[str, str], frozenset[str]]:
    path = Path(paired_file(str(config.home)))
    try:
        info = os.stat(path)
    except OSError:
        return {}, frozenset()
    key = (info.st_mtime_ns, info.st_size, info.st_ino)
    cached = _VIEWS.get(config.home)
    if cached is not None and cached[0] == key:
        return cached[1]
    peers = load_peers(config.home)
    view = (
        {p.server_name: p.name for p in peers},
        frozenset(p.server_name for p in peers if p.trusted),
    )
    _VIEWS[config.home] = (key, view)
    return view


def trust_machine(config: Config, which: str, *, confirmed: bool) -> PairedMachine:
    """Every session of a paired machine becomes a trusted remote contact of every session
    here. The person's act: refused without their confirmation."""
    if not confirmed:
        raise ConsentRequired(
            f"trusting the machine {which} needs the person's confirmation: ask them to run "
            f"`claudematrix machine trust {which}` in their terminal"
        )
    return _set_trusted(config, which, True)


async def untrust_machine(
    config: Config, which: str, progress: Callable[[str], None] = lambda _m: None
) -> PairedMachine:
    """Trust in a whole machine ends at once: nothing trusted goes to its sessions from now
    on, and this machine's room for it is emptied and shut (never needs asking)."""
    changed = _set_trusted(config, which, False)
    if config.embedded:
        await asyncio.to_thread(homeserver.start, config, progress)
    await close_trusted_machine_room(config, changed.server_name)
    return changed


def _set_trusted(config: Config, which: str, trusted: bool) -> PairedMachine:
    changed = set_peer_trusted(config.home, which, trusted)
    if changed is None:
        known = ", ".join(p.name for p in load_peers(config.home)) or "none"
        raise ConfigError(f"no paired machine is called {which!r} (paired: {known})")
    return changed


@dataclass(frozen=True)
class PeerState:
    name: str
    server_name: str
    # Since when (ms) this machine's homeserver fails to reach it: mail to it waits and goes
    # when it is back. None: reached (or nothing had to go yet).
    down_since: int | None


async def peer_states(config: Config) -> list[PeerState]:
    """Each paired machine, and whether mail to it is waiting, by the homeserver's records."""
    peers = load_peers(config.home)
    if not peers or not config.embedded:
        return []
    admin = await admin_credentials(config)
    if admin is None:
        return [PeerState(p.name, p.server_name, None) for p in peers]
    states = []
    for peer in peers:
        down = await asyncio.to_thread(
            homeserver.federation_down_since,
            config.homeserver_url,
            admin.access_token,
            peer.server_name,
        )
        states.append(PeerState(peer.name, peer.server_name, down))
    return states
