"""claudematrix.store._store: sync commits, inbox, search, rooms, outbox and settings."""

from __future__ import annotations

import pytest

from claudematrix.errors import UnknownMessage
from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.store import Membership, RoomRecord, Store, SyncBatch
from claudematrix.types import Direction
from unit.store.conftest import PEER, ROOM, msg


def test_commit_sync_dedupes_by_event_id(store: Store) -> None:
    first = store.commit_sync(SyncBatch(next_batch="t1", messages=[msg(1), msg(2)]))
    assert len(first) == 2
    # The same events again (a replayed /sync after a crash) add nothing, the token moves on.
    again = store.commit_sync(SyncBatch(next_batch="t2", messages=[msg(2), msg(1), msg(3)]))
    assert len(again) == 1
    assert store.next_batch() == "t2"
    assert [m.subject for m in store.inbox(include_read=True)] == [
        "subject 3",
        "subject 2",
        "subject 1",
    ]
    count = store._conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 3


def test_commit_sync_returns_only_new_incoming_ids(store: Store) -> None:
    ids = store.commit_sync(
        SyncBatch(next_batch="t1", messages=[msg(1), msg(2, direction=Direction.OUT)])
    )
    assert len(ids) == 1
    assert store.message(str(ids[0])).event_id == "$event1"


def test_commit_sync_is_all_or_nothing(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t1", messages=[msg(1)]))
    broken = msg(3)
    object.__setattr__(broken, "label", "not a Label")  # fails in the middle of the batch
    with pytest.raises(AttributeError):
        store.commit_sync(SyncBatch(next_batch="t2", messages=[msg(2), broken]))
    assert store.next_batch() == "t1"  # the token did not move without its events
    assert not store.has_event(EventID("$event2"))
    # And the store is usable afterwards (no transaction left open).
    store.commit_sync(SyncBatch(next_batch="t3", messages=[msg(2)]))
    assert store.has_event(EventID("$event2"))


def test_token_only_batch_and_no_token_batch(store: Store) -> None:
    assert store.next_batch() is None
    store.commit_sync(SyncBatch(next_batch="t1"))
    assert store.next_batch() == "t1"
    store.commit_sync(SyncBatch(next_batch=None, messages=[msg(1)]))
    assert store.next_batch() == "t1"


def test_outgoing_messages_are_read_and_not_in_inbox(store: Store) -> None:
    store.outbox_add("txn1", RoomID("!r:x"), "@b:x", "{}")
    store.outbox_done("txn1", msg(1, direction=Direction.OUT))
    assert store.outbox_pending() == []
    assert store.inbox(include_read=True) == []
    assert store.unread_count() == 0
    assert store.message("$event1").read


def test_inbox_is_newest_first_with_unread_filter_and_limit(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(i) for i in range(1, 6)]))
    assert [m.subject for m in store.inbox()] == [f"subject {i}" for i in (5, 4, 3, 2, 1)]
    assert [m.subject for m in store.inbox(limit=2)] == ["subject 5", "subject 4"]
    local_ids = [m.local_id or 0 for m in store.inbox()]
    assert local_ids == sorted(local_ids, reverse=True)
    assert store.unread_count() == 5


def test_mark_read(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(1), msg(2)]))
    first = store.message("$event1")
    assert not first.read
    assert first.local_id is not None
    store.mark_read(first.local_id)
    assert store.message(str(first.local_id)).read
    assert [m.subject for m in store.inbox()] == ["subject 2"]
    assert [m.subject for m in store.inbox(include_read=True)] == ["subject 2", "subject 1"]
    assert store.unread_count() == 1


def test_message_by_local_id_event_id_and_unknown(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(7)]))
    by_event = store.message("$event7")
    assert by_event.body == "body 7"
    assert store.message(f" {by_event.local_id} ") == by_event
    for bad in ("9999", "$nope", "abc"):
        with pytest.raises(UnknownMessage, match="inbox --all"):
            store.message(bad)


def test_announcing_is_separate_from_reading(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(1), msg(2), msg(3)]))
    ids = {m.subject: m.local_id or 0 for m in store.inbox()}
    store.mark_announced(ids["subject 2"])
    flags = {m.subject: (m.announced, m.read) for m in store.inbox(include_read=True)}
    assert flags == {
        "subject 3": (False, False),
        "subject 2": (True, False),
        "subject 1": (True, False),
    }
    assert store.unread_count() == 3  # announcing never marks read


def test_search_finds_subject_body_and_sender(store: Store) -> None:
    store.commit_sync(
        SyncBatch(
            next_batch="t",
            messages=[
                msg(1, subject="Tokenizer review", body="please look at parser.py"),
                msg(2, subject="Lunch", body="pizza at noon", sender_name="Zed"),
                msg(3, subject="Other", body="the tokenizer is fine", direction=Direction.OUT),
            ],
        )
    )
    assert {m.event_id for m in store.search("tokenizer")} == {"$event1", "$event3"}
    assert [m.event_id for m in store.search("pizza noon")] == ["$event2"]
    assert [m.event_id for m in store.search("zed")] == ["$event2"]
    assert store.search("pizza tokenizer") == []  # every word must appear
    assert store.search("   ") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        'foo"bar',
        "AND",
        "OR NOT",
        "a AND (b",
        "NEAR(x y)",
        "*",
        "tok*",
        "subject:secret",
        "-minus",
        "^caret",
        "(",
        ")",
        "{subject body}: x",
        "'; DROP TABLE messages; --",
        "日本語 テキスト",
    ],
)
def test_search_with_fts_syntax_in_the_query_does_not_crash(store: Store, query: str) -> None:
    store.commit_sync(
        SyncBatch(next_batch="t", messages=[msg(1, body='say "AND" (or NOT) near* x:y')])
    )
    assert isinstance(store.search(query), list)
    assert store._conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_search_treats_operators_as_words(store: Store) -> None:
    store.commit_sync(
        SyncBatch(next_batch="t", messages=[msg(1, body="cats AND dogs"), msg(2, body="cats")])
    )
    assert [m.event_id for m in store.search("cats AND dogs")] == ["$event1"]
    assert [m.event_id for m in store.search("cats OR dogs")] == []  # "or" is just a word


def test_rooms_and_dm_lookup(store: Store) -> None:
    assert store.dm_room(PEER) is None
    store.save_room(RoomRecord(ROOM, "dm", PEER))
    store.save_room(RoomRecord(RoomID("!lobby:localhost"), "lobby"))
    assert store.dm_room(PEER) == ROOM
    assert store.lobby_room() == "!lobby:localhost"
    assert store.room(ROOM) == RoomRecord(ROOM, "dm", PEER, True)
    store.commit_sync(SyncBatch(next_batch=None, rooms=[RoomRecord(ROOM, "dm", None, False)]))
    assert store.dm_room(PEER) is None  # left: no longer used for sending
    assert store.room(ROOM) == RoomRecord(ROOM, "dm", PEER, False)  # peer kept


def test_outbox_add_pending_done(store: Store) -> None:
    assert store.outbox_pending() == []
    store.outbox_add("txn1", ROOM, PEER, '{"body": "one"}')
    store.outbox_add("txn2", ROOM, PEER, '{"body": "two"}')
    store.outbox_add("txn1", ROOM, PEER, '{"body": "changed"}')  # same txn: ignored
    assert store.outbox_pending() == [
        ("txn1", ROOM, PEER, '{"body": "one"}'),
        ("txn2", ROOM, PEER, '{"body": "two"}'),
    ]
    store.outbox_done("txn1", msg(1, direction=Direction.OUT))
    assert [p[0] for p in store.outbox_pending()] == ["txn2"]
    assert store.has_event(EventID("$event1"))
    # Done twice (a retry that got the same event id back) records it once.
    store.outbox_done("txn2", msg(1, direction=Direction.OUT))
    assert store.outbox_pending() == []
    assert store._conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_settings(store: Store) -> None:
    assert store.setting("mode") is None
    store.set_setting("mode", "trusted")
    store.set_setting("display_name", "x")
    store.set_setting("mode", "public")
    assert store.setting("mode") == "public"
    assert store.setting("display_name") == "x"
    assert store.next_batch() is None  # settings never collide with the sync token


def test_where_a_user_stands_by_rooms_and_trust(store: Store) -> None:
    """The hooks' query, which Directory.audience_of uses too: a shared project room, else
    the machine lobby, else trust; rooms I left prove nothing."""
    users = {
        "same project": UserID("@cc-proj:localhost"),
        "same machine": UserID("@cc-lobby:localhost"),
        "both": UserID("@cc-both:localhost"),
        "trusted remote": UserID("@t:example.org"),
        "left room": UserID("@cc-left:localhost"),
        "remote": UserID("@s:example.org"),
    }
    project, lobby, gone = RoomID("!p:l"), RoomID("!l:l"), RoomID("!g:l")
    store.commit_sync(
        SyncBatch(
            next_batch="s",
            rooms=[
                RoomRecord(project, "project"),
                RoomRecord(lobby, "lobby"),
                RoomRecord(gone, "project", joined=False),
            ],
            memberships=[
                Membership(project, users["same project"], "", True),
                Membership(lobby, users["same machine"], "", True),
                Membership(project, users["both"], "", True),
                Membership(lobby, users["both"], "", True),
                Membership(gone, users["left room"], "", True),
            ],
        )
    )
    store.set_trusted(users["trusted remote"], True)
    expected = {
        "same project": "same project",
        "same machine": "same machine",
        "both": "same project",
        "trusted remote": "trusted remote",
        "left room": "remote",
        "remote": "remote",
    }
    assert {k: store.where(u) for k, u in users.items()} == expected


def test_kept_undecryptable_events_are_bounded_newest_first(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("claudematrix.store._store.UNDECRYPTED_KEPT", 3)
    for n in range(5):  # one sync each: later ones are newer
        batch = SyncBatch(next_batch=f"t{n}", messages=[msg(n)])
        batch.undecrypted.append((EventID(f"$event{n}"), ROOM, "{}"))
        store.commit_sync(batch)
    assert [e for e, _r, _raw in store.undecrypted()] == ["$event2", "$event3", "$event4"]
    # The placeholders of those dropped stay in the inbox.
    assert len(store.inbox(include_read=True)) == 5


def test_renamed_accounts_keep_their_mail_trust_and_blocks(store: Store) -> None:
    from claudematrix.store import Person

    moved = UserID("@cc-peer:100.64.0.7:8448")
    other = UserID("@eve:example.org")
    store.commit_sync(
        SyncBatch(
            next_batch="t1",
            messages=[msg(1), msg(2, direction=Direction.OUT)],
            people=[Person(PEER, "Peer", 5)],
        )
    )
    store.set_trusted(PEER, True)
    store.set_blocked(other, True)
    store.rename_users({PEER: moved})
    inbox = store.inbox(include_read=True)
    assert [(m.sender, m.recipient) for m in inbox if m.subject == "subject 1"] == [
        (moved, UserID("@cc-me:localhost"))
    ]
    assert store.message("$event2").recipient == moved
    assert store.trusted() == {moved} and store.blocked() == {other}
    assert set(store.people()) == {moved}
    assert [m.subject for m in store.search("body")] != []  # the search index still holds
