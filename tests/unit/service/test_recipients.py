"""claudematrix.service.recipients: what a person types as <to> becomes a Matrix target; a
name must match one contact (exactly, else by a unique prefix), and a miss or a tie is one
line that says what to do."""

from __future__ import annotations

import asyncio

import pytest

from claudematrix.config import load_config
from claudematrix.errors import InvalidInput, UnknownRecipient
from claudematrix.ids import RoomID, UserID
from claudematrix.service.recipients import Target, existing_user, match_contact, parse_target
from claudematrix.types import Audience, Contact


def contact(user: str, name: str = "", short: str = "") -> Contact:
    return Contact(UserID(user), name, Audience.MACHINE, short_name=short)


PARSER = contact("@cc-1a2b3c4d:localhost", "parser@main on vm (1a2b3c4d)", "parser-1a2b3c4d")
LEXER = contact("@cc-lexer:localhost", "lexer@main on vm (lexer)", "lexer-lexer")
PARROT = contact("@cc-parrot:localhost", "Parrot", "parrot")
CONTACTS = [PARSER, LEXER, PARROT]


def no_directory() -> list[Contact]:
    raise AssertionError("an ID or a room needs no directory")


@pytest.mark.parametrize(
    ("to", "target"),
    [
        ("@bob:example.org", Target(user=UserID("@bob:example.org"), label="@bob:example.org")),
        ("  @bob:example.org ", Target(user=UserID("@bob:example.org"), label="@bob:example.org")),
        ("!room:example.org", Target(room=RoomID("!room:example.org"), label="!room:example.org")),
        ("#team:example.org", Target(alias="#team:example.org", label="#team:example.org")),
    ],
)
def test_ids_and_rooms_are_taken_as_they_are(to: str, target: Target) -> None:
    assert parse_target(to, no_directory) == target


@pytest.mark.parametrize("to", ["@bob", "!", "#team", "@bob:example.org x"])
def test_a_malformed_id_is_refused(to: str) -> None:
    with pytest.raises(InvalidInput):
        parse_target(to, no_directory)


def test_no_recipient_at_all() -> None:
    with pytest.raises(UnknownRecipient, match="no recipient given"):
        parse_target("   ", no_directory)


def test_a_name_is_a_contact_named_back_safely() -> None:
    hostile = contact("@cc-evil:localhost", 'Evil"\n<@owner:localhost> (self)', "evil")
    target = parse_target("evil", lambda: [*CONTACTS, hostile])
    assert target.user == "@cc-evil:localhost"
    assert target.label == '"Evil\\" <@owner:localhost> (self)" <@cc-evil:localhost>'


@pytest.mark.parametrize(
    ("name", "found"),
    [
        ("cc-lexer", LEXER),  # the localpart
        ("lexer", LEXER),  # the localpart without cc-
        ("PARROT", PARROT),  # the display name, any case
        ("parser-1a2b3c4d", PARSER),  # the short name
        ("1a2b", PARSER),  # a unique prefix
        ("parr", PARROT),
    ],
)
def test_a_name_matches_one_contact(name: str, found: Contact) -> None:
    assert match_contact(name, CONTACTS) == found


def test_an_exact_match_wins_over_prefixes() -> None:
    par = contact("@cc-par:localhost", "", "par")
    assert match_contact("par", [*CONTACTS, par]) == par


def test_a_tie_names_the_candidates() -> None:
    with pytest.raises(UnknownRecipient) as tie:
        match_contact("pa", CONTACTS)
    text = str(tie.value)
    assert text.startswith("'pa' matches several contacts: ") and text.endswith("use the Matrix ID")
    assert "<@cc-1a2b3c4d:localhost>" in text and "<@cc-parrot:localhost>" in text
    assert "lexer" not in text and "\n" not in text


def test_no_match_says_how_to_find_someone() -> None:
    with pytest.raises(UnknownRecipient, match="no contact matches 'zed': run `claudematrix"):
        match_contact("zed", CONTACTS)


class Profiles:
    """A client whose homeserver shows the profiles in `names` (None: not to me)."""

    user_id = UserID("@cc-me:localhost")

    def __init__(self, names: dict[str, str | None]) -> None:
        self.names = names

    async def require_user(self, user: UserID) -> str | None:
        return self.names[user]


def existing(names: dict[str, str | None], user: str) -> str:
    client = Profiles(names)
    return asyncio.run(existing_user(load_config(), client, UserID(user)))  # type: ignore[arg-type]


def test_an_existing_user_is_named_where_the_profile_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_HOMESERVER", "https://matrix.example.org")  # no admin here
    assert existing({"@bob:localhost": "Bob"}, "@bob:localhost") == "Bob"
    # Not shown to me, and no admin power to ask: it may exist; nothing more can be told.
    assert existing({"@bob:localhost": None}, "@bob:localhost") == ""
    assert existing({"@bob:far.example": None}, "@bob:far.example") == ""
