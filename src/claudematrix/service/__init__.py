"""Wires store + Matrix client + sync for one identity; the CLI and MCP server call only this."""

from claudematrix.service.federation_setup import Federated, federate
from claudematrix.service.pairing import (
    PeerState,
    both_ways,
    own_card,
    pair,
    paired_machines,
    peer_states,
    trust_machine,
    unpair,
    untrust_machine,
)
from claudematrix.service.session import Progress, Service, WhoAmI, stderr_progress
from claudematrix.service.team_membership import Moved, join_team, leave_team
from claudematrix.service.verification import Compare, verify_device

__all__ = [
    "Service",
    "WhoAmI",
    "Progress",
    "stderr_progress",
    "Compare",
    "verify_device",
    "Federated",
    "federate",
    "Moved",
    "join_team",
    "leave_team",
    "PeerState",
    "peer_states",
    "both_ways",
    "own_card",
    "pair",
    "paired_machines",
    "trust_machine",
    "untrust_machine",
    "unpair",
]
