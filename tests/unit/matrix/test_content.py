"""Message <-> Matrix event content, including what ordinary Matrix clients send."""

from __future__ import annotations

import json
from typing import Any

import pytest

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.matrix.content import NAMESPACE, build_content, message_from_event
from claudematrix.types import Direction, Label

ME = UserID("@cc-me:localhost")
PEER = UserID("@cc-peer:localhost")
ROOM = RoomID("!dm:localhost")


def event(content: dict[str, Any], sender: str = PEER, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": "$ev1",
        "sender": sender,
        "origin_server_ts": 1_795_000_000_123,
        "content": content,
        **extra,
    }


@pytest.mark.parametrize("label", list(Label))
def test_build_then_parse_round_trips(label: Label) -> None:
    text = 'Line one <b>not html</b> & "quotes"\nline two'
    content = build_content("Review: parser", text, label, EventID("$parent"))
    message = message_from_event(event(content), ROOM, ME, sender_name="Peer")
    assert message is not None
    assert message.subject == "Review: parser"
    assert message.body == text
    assert message.label is label
    assert message.reply_to == "$parent"
    assert message.sender == PEER
    assert message.sender_name == "Peer"
    assert message.direction is Direction.IN
    assert message.recipient == ME
    assert message.event_id == "$ev1"
    assert message.room_id == ROOM
    assert message.origin_ts == 1_795_000_000_123


def test_built_content_reads_well_in_other_clients() -> None:
    content = build_content("Hi <there>", "a < b\nc", Label.PRIVATE)
    assert content["msgtype"] == "m.text"
    assert content["body"] == "[Hi <there>] a < b\nc"
    assert content[NAMESPACE]["subject"] == "Hi <there>"
    # The text travels once: every copy costs the homeserver per byte.
    assert json.dumps(content).count("a < b") == 1
    parsed = message_from_event(event(content), ROOM, ME)
    assert parsed is not None and parsed.subject == "Hi <there>" and parsed.body == "a < b\nc"
    tricky = build_content("S", "[S] starts like a subject", Label.PRIVATE)
    parsed = message_from_event(event(tricky), ROOM, ME)
    assert parsed is not None and parsed.body == "[S] starts like a subject"
    assert "m.relates_to" not in content
    no_subject = build_content("", "just text", Label.PUBLIC)
    assert no_subject["body"] == "just text"
    parsed = message_from_event(event(no_subject), ROOM, ME)
    assert parsed is not None and parsed.subject == "" and parsed.body == "just text"


def test_my_own_event_is_outgoing_to_the_peer() -> None:
    content = build_content("s", "t", Label.PRIVATE)
    message = message_from_event(event(content, sender=ME), ROOM, ME, peer=PEER)
    assert message is not None
    assert message.direction is Direction.OUT
    assert message.recipient == PEER


def test_plain_element_message_takes_its_subject_from_the_first_line() -> None:
    content = {"msgtype": "m.text", "body": "  Can you check the build?\nIt fails on CI.  "}
    message = message_from_event(event(content), ROOM, ME)
    assert message is not None
    assert message.subject == "Can you check the build?"
    assert message.body == content["body"]
    assert message.label is Label.PRIVATE
    assert message.reply_to is None


def test_plain_message_with_a_long_first_line_gets_a_short_subject() -> None:
    long_line = "word " * 40
    message = message_from_event(event({"msgtype": "m.text", "body": long_line}), ROOM, ME)
    assert message is not None
    assert len(message.subject) <= 72
    assert message.subject.endswith("…")
    assert long_line.startswith(message.subject[:-1])


def test_element_reply_and_notice() -> None:
    content = {
        "msgtype": "m.notice",
        "body": "ok",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$orig"}},
    }
    message = message_from_event(event(content), ROOM, ME)
    assert message is not None
    assert message.reply_to == "$orig"
    assert message.subject == "ok"


def test_unknown_label_is_treated_as_the_strictest() -> None:
    content = build_content("s", "t", Label.PUBLIC)
    content[NAMESPACE]["label"] = "galactic"
    message = message_from_event(event(content), ROOM, ME)
    assert message is not None and message.label is Label.SECRET


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "m.room.member", "event_id": "$m", "content": {"membership": "join"}},
        {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "no id"}},
        event({"msgtype": "m.image", "body": "cat.png", "url": "mxc://x/y"}),
        event({"body": "no msgtype"}),
        event("not a dict"),  # type: ignore[arg-type]
        event({}),
    ],
)
def test_non_text_events_are_not_messages(raw: dict[str, Any]) -> None:
    assert message_from_event(raw, ROOM, ME) is None


def test_malformed_fields_do_not_crash() -> None:
    weird = event(
        {
            "msgtype": "m.text",
            "body": 42,
            NAMESPACE: {"text": 5, "label": None},
            "m.relates_to": "nonsense",
        }
    )
    message = message_from_event(weird, ROOM, ME)
    assert message is not None
    assert message.body == "42"
    assert message.reply_to is None


def test_markdown_reaches_people_as_html_beside_the_exact_text() -> None:
    text = "Done:\n\n- parser fixed\n- tests **green**\n\n```py\nx = 1 < 2\n```\n[PR](https://example.org/1)"
    content = build_content("status", text, Label.PRIVATE, for_people=True)
    html = content["formatted_body"]
    assert content["format"] == "org.matrix.custom.html"
    assert html.startswith("<p><strong>status</strong></p>")
    assert "<li>parser fixed</li>" in html and "<strong>green</strong>" in html
    assert '<code class="language-py">x = 1 &lt; 2' in html
    assert '<a href="https://example.org/1">PR</a>' in html
    # Other sessions still read subject, label and the exact text.
    message = message_from_event(event(content), ROOM, ME)
    assert message is not None and (message.subject, message.body) == ("status", text)


def test_raw_html_in_a_message_is_shown_as_text_never_passed_through() -> None:
    content = build_content(
        "", "see <script>alert(1)</script> **now**", Label.PRIVATE, for_people=True
    )
    assert "<script>" not in content["formatted_body"]
    assert "&lt;script&gt;" in content["formatted_body"]


def test_no_html_copy_for_plain_text_or_for_sessions() -> None:
    plain = build_content("hi", "just a line\nand another", Label.PRIVATE, for_people=True)
    assert "formatted_body" not in plain
    session = build_content("hi", "- a\n- b", Label.PRIVATE)
    assert "formatted_body" not in session and "format" not in session
