"""Naming the paired machine a remote party is on, as the hooks and the service both do."""

from __future__ import annotations

from claudematrix.local.places import (
    machine_names,
    machine_of,
    trusted_place,
    trusted_servers,
    with_machine,
)

NAMES = {"127.0.0.2:8448": "beta"}


def test_remote_parties_on_a_paired_machine_are_named_with_it() -> None:
    assert with_machine("remote", "@cc-bob:127.0.0.2:8448", NAMES) == "remote (beta)"
    assert with_machine("trusted remote", "@cc-bob:127.0.0.2:8448", NAMES) == (
        "trusted remote (beta)"
    )
    assert machine_of("remote", "@cc-bob:127.0.0.2:8448", NAMES) == "beta"


def test_nearer_places_and_unknown_servers_stay_as_they_are() -> None:
    assert with_machine("same machine", "@cc-bob:127.0.0.2:8448", NAMES) == "same machine"
    assert with_machine("remote", "@eve:elsewhere.org", NAMES) == "remote"
    assert with_machine("remote", "@cc-bob:127.0.0.2:8448", {}) == "remote"


def test_malformed_machine_lists_give_no_names() -> None:
    assert machine_names(None) == {} and machine_names([1, 2]) == {}
    assert machine_names({"machines": [{"name": 3}, "x", {"server_name": "s", "name": "n"}]}) == {
        "s": "n"
    }


def test_sessions_of_a_machine_trusted_as_a_whole_are_trusted_remote() -> None:
    paired = {
        "machines": [
            {"name": "beta", "server_name": "127.0.0.2:8448", "trusted": True},
            {"name": "gamma", "server_name": "127.0.0.3:8448", "trusted": False},
            {"name": "delta", "server_name": "127.0.0.4:8448", "trusted": "yes"},
        ]
    }
    trusted = trusted_servers(paired)
    assert trusted == {"127.0.0.2:8448"}  # only a real true counts
    assert trusted_place("remote", "@cc-bob:127.0.0.2:8448", trusted) == "trusted remote"
    assert trusted_place("remote", "@cc-eve:127.0.0.3:8448", trusted) == "remote"
    # Nearness proven by rooms stays; the whole-machine trust only raises "remote".
    assert trusted_place("same machine", "@cc-bob:127.0.0.2:8448", trusted) == "same machine"
    # A server name is compared whole: a longer one sharing its prefix is another machine.
    assert trusted_place("remote", "@x:127.0.0.2:84489", trusted) == "remote"
    assert trusted_servers(None) == frozenset() and trusted_servers({"machines": 3}) == set()
