"""Mode changes are atomic: stored only once applied; a failed change leaves the previous mode.

People is driven with a stand-in for the Service's directory (the homeserver side of a mode
change is exercised by the integration and adversarial tiers); what is checked here is the
order of applying and storing, and what a failure leaves behind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from claudematrix.errors import ConsentRequired, HomeserverUnavailable, ModeChangeFailed
from claudematrix.service.people import People
from claudematrix.store import Store
from claudematrix.types import Label


@dataclass
class Directory:
    store: Store
    fail_on: Label | None = None
    applied: list[tuple[Label, str]] = field(default_factory=list)

    def mode(self) -> Label:
        return Label(self.store.setting("mode") or "private")

    async def apply_mode(self, mode: Label) -> None:
        # What was stored while this mode was being applied: never the new one yet.
        self.applied.append((mode, self.mode().value))
        if mode is self.fail_on:
            raise HomeserverUnavailable("cannot reach the homeserver")

    async def circle(self) -> None:
        return None

    async def publish(self, mode: Label | None = None) -> None:
        return None


@dataclass
class Service:
    store: Store
    directory: Directory


def people(fail_on: Label | None = None) -> tuple[People, Directory]:
    store = Store.in_memory()
    store.set_setting("mode", "private")
    directory = Directory(store, fail_on)
    return People(Service(store, directory)), directory  # type: ignore[arg-type]


def test_a_mode_is_stored_only_after_it_was_applied() -> None:
    p, directory = people()
    assert asyncio.run(p.set_mode("secret", confirmed=False)) is Label.SECRET
    assert directory.applied == [(Label.SECRET, "private")]
    assert directory.mode() is Label.SECRET


def test_opening_up_that_fails_takes_back_what_it_opened_and_keeps_the_mode() -> None:
    p, directory = people(fail_on=Label.PUBLIC)
    with pytest.raises(ModeChangeFailed) as failed:
        asyncio.run(p.set_mode("public", confirmed=True))
    assert "the mode stays private" in str(failed.value) and "\n" not in str(failed.value)
    assert directory.mode() is Label.PRIVATE
    assert directory.applied == [(Label.PUBLIC, "private"), (Label.PRIVATE, "private")]


def test_closing_down_that_fails_keeps_the_mode_and_reopens_nothing() -> None:
    p, directory = people(fail_on=Label.SECRET)
    with pytest.raises(ModeChangeFailed):
        asyncio.run(p.set_mode("secret", confirmed=False))
    assert directory.mode() is Label.PRIVATE
    assert directory.applied == [(Label.SECRET, "private")]  # nothing re-published


def test_opening_up_needs_the_person_and_changes_nothing_without() -> None:
    p, directory = people()
    with pytest.raises(ConsentRequired):
        asyncio.run(p.set_mode("trusted", confirmed=False))
    assert directory.applied == [] and directory.mode() is Label.PRIVATE
