"""claudematrix.matrix.client: the requests it makes and what becomes of the answers, against
a loopback HTTP server that answers from a script (the real homeserver: the integration tier).
A refusal becomes our error of its errcode's class with a next step; an unreachable server
becomes HomeserverUnavailable; never a nio error object or an aiohttp exception."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiohttp import web

from claudematrix.errors import (
    ClaudeMatrixError,
    Forbidden,
    HomeserverError,
    HomeserverUnavailable,
    NotFound,
    RateLimited,
    UnknownRecipient,
    UnknownToken,
)
from claudematrix.ids import RoomID, UserID
from claudematrix.matrix.client import (
    OWN_EVENTS_PER_MARK,
    SYNC_FILTER,
    SYNC_MARK,
    MatrixClient,
    SessionCredentials,
    _error,
)
from support import free_port

T = TypeVar("T")
ME = UserID("@cc-me:localhost")
ROOM = RoomID("!room:localhost")
TOKEN = "syt_secret_token"


@dataclass
class Seen:
    method: str
    path: str  # decoded, without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeHomeserver:
    """Answers each request with the first scripted answer whose method and path prefix
    match (404 M_UNRECOGNIZED otherwise), and keeps every request it saw."""

    answers: list[tuple[str, str, int, Any, bool]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def answer(
        self, method: str, path: str, status: int = 200, body: Any = None, *, once: bool = False
    ) -> None:
        """Answer requests to `path...` so; `once`: only the next one."""
        self.answers.append((method, path, status, {} if body is None else body, once))

    def refuse(
        self, method: str, path: str, status: int, errcode: str, error: str, *, once: bool = False
    ) -> None:
        self.answer(method, path, status, {"errcode": errcode, "error": error}, once=once)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(raw) if raw else None,
            )
        )
        for scripted in self.answers:
            method, prefix, status, body, once = scripted
            if request.method == method and request.path.startswith(prefix):
                if once:
                    self.answers.remove(scripted)
                if isinstance(body, bytes):
                    return web.Response(status=status, body=body)
                return web.json_response(body, status=status)
        return web.json_response({"errcode": "M_UNRECOGNIZED", "error": "?"}, status=404)

    def requests_to(self, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(prefix)]


def token_of(request: Seen) -> str | None:
    """The access token a request carried: always in the Authorization header, never in the
    URL (where proxies and logs keep it)."""
    assert "access_token" not in request.query, request.path
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ") or None


def query_of(request: Seen) -> dict[str, str]:
    """The query without the access token."""
    return {k: v for k, v in request.query.items() if k != "access_token"}


def against(
    fake: FakeHomeserver, call: Callable[[MatrixClient], Awaitable[T]], *, up: bool = True
) -> T:
    """Run `call` with a client of ME whose homeserver is `fake` (or a closed port)."""

    async def main() -> T:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fake._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        if up:
            await web.TCPSite(runner, "127.0.0.1", port).start()
        client = MatrixClient(SessionCredentials(f"http://127.0.0.1:{port}", ME, TOKEN, "DEVICE"))
        try:
            return await call(client)
        finally:
            await client.close()
            await runner.cleanup()

    return asyncio.run(main())


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "cls"),
    [("M_FORBIDDEN", Forbidden), ("M_NOT_FOUND", NotFound), ("M_LIMIT_EXCEEDED", RateLimited)],
)
def test_a_refusal_becomes_the_class_of_its_errcode(
    errcode: str, cls: type[HomeserverError]
) -> None:
    error = _error("joining !r:x", "You are not invited", errcode)
    assert type(error) is cls and error.errcode == errcode
    assert str(error) == f"joining !r:x failed: You are not invited ({errcode})"


def test_a_refusal_without_an_errcode_says_so() -> None:
    error = _error("syncing", 502, None)
    assert type(error) is HomeserverError
    assert str(error) == "syncing failed: 502 (no errcode)"


def test_a_lost_login_says_what_to_do() -> None:
    error = _error("syncing", "Unknown access token", "M_UNKNOWN_TOKEN")
    assert type(error) is UnknownToken
    assert "no longer accepts this session's login" in str(error)
    assert "run the command again" in str(error) and "\n" not in str(error)


def test_credentials_never_show_the_token() -> None:
    creds = SessionCredentials("http://127.0.0.1:1", ME, TOKEN, "DEVICE")
    assert TOKEN not in repr(creds) and ME in repr(creds)


def test_an_unreachable_homeserver_says_how_to_start_it() -> None:
    with pytest.raises(HomeserverUnavailable) as caught:
        against(FakeHomeserver(), lambda c: c.whoami(), up=False)
    assert "cannot reach the homeserver at http://127.0.0.1:" in str(caught.value)
    assert "claudematrix up" in str(caught.value)


# --- sync ----------------------------------------------------------------------------------


def test_sync_asks_for_news_from_others_only() -> None:
    fake = FakeHomeserver()
    fake.answer("GET", "/_matrix/client/v3/sync", body={"next_batch": "s2", "rooms": {}})
    got = against(fake, lambda c: c.sync("s1", 30_000))
    assert got == {"next_batch": "s2", "rooms": {}}
    (request,) = fake.requests_to("/_matrix/client/v3/sync")
    assert token_of(request) == TOKEN
    assert (request.query["since"], request.query["timeout"]) == ("s1", "30000")
    sent = json.loads(request.query["filter"])
    assert sent["room"]["timeline"]["not_senders"] == [ME]  # my own events are no news
    assert sent["room"]["timeline"]["types"] == SYNC_FILTER["room"]["timeline"]["types"]
    assert "not_senders" not in SYNC_FILTER["room"]["timeline"]  # the shared filter is kept


def _unencrypted(fake: FakeHomeserver) -> None:
    """ROOM has no encryption."""
    fake.refuse(
        "GET",
        "/_matrix/client/v3/rooms/!room:localhost/state/m.room.encryption",
        404,
        "M_NOT_FOUND",
        "no",
    )


def _plain_room(fake: FakeHomeserver) -> None:
    """ROOM has no encryption; sends into it are answered with an event id."""
    _unencrypted(fake)
    fake.answer("PUT", "/_matrix/client/v3/rooms/!room:localhost/send/", body={"event_id": "$e"})
    fake.answer("GET", "/_matrix/client/v3/sync", body={"next_batch": "s2"})
    fake.answer("PUT", f"/_matrix/client/v3/user/{ME}/account_data/{SYNC_MARK}", body={})


async def _send(client: MatrixClient, count: int) -> None:
    for i in range(count):
        await client.send(ROOM, {"msgtype": "m.text", "body": f"m{i}"}, f"txn-{i}")
    if client._mark is not None:  # the mark goes out in the background
        await asyncio.wait_for(client._mark, 5)


def _marks(fake: FakeHomeserver) -> list[Seen]:
    return fake.requests_to(f"/_matrix/client/v3/user/{ME}/account_data/{SYNC_MARK}")


def test_a_long_polling_client_marks_its_position_after_a_run_of_its_own_events() -> None:
    """My own events never come back in my sync, so its position would stay behind them and
    the homeserver would work out each wake from further back: after OWN_EVENTS_PER_MARK
    of them, one mark in my account data (which my filter lets through) brings it back."""
    fake = FakeHomeserver()
    _plain_room(fake)

    async def scenario(client: MatrixClient) -> list[int]:
        await client.sync("s1", 30_000)  # a long-poll: this client's position matters
        marks = []
        await _send(client, OWN_EVENTS_PER_MARK - 1)
        marks.append(len(_marks(fake)))
        await _send(client, 1)
        marks.append(len(_marks(fake)))
        await client.sync("s2", 30_000)  # back with a current position: counting anew
        await _send(client, OWN_EVENTS_PER_MARK - 1)
        marks.append(len(_marks(fake)))
        return marks

    assert against(fake, scenario) == [0, 1, 1]
    (mark,) = _marks(fake)
    assert token_of(mark) == TOKEN and mark.method == "PUT"
    sent = json.loads(fake.requests_to("/_matrix/client/v3/sync")[0].query["filter"])
    assert sent["account_data"] == {"types": [SYNC_MARK]}  # the mark alone comes through


def test_a_client_that_never_long_polls_makes_no_marks() -> None:
    """A one-shot command's sends leave no sync of its own behind: nothing to bring back."""
    fake = FakeHomeserver()
    _plain_room(fake)

    async def scenario(client: MatrixClient) -> None:
        await client.sync(None, 0)
        await _send(client, 2 * OWN_EVENTS_PER_MARK)

    against(fake, scenario)
    assert _marks(fake) == []


def test_a_failed_mark_is_tried_again_with_the_next_own_event() -> None:
    fake = FakeHomeserver()
    fake.refuse(
        "PUT", f"/_matrix/client/v3/user/{ME}/account_data/", 500, "M_UNKNOWN", "db", once=True
    )
    _plain_room(fake)

    async def scenario(client: MatrixClient) -> None:
        await client.sync("s1", 30_000)
        await _send(client, OWN_EVENTS_PER_MARK)  # its mark is refused
        await _send(client, 1)

    against(fake, scenario)
    assert [m.method for m in _marks(fake)] == ["PUT", "PUT"]


@pytest.mark.parametrize(
    ("status", "body", "error", "says"),
    [
        (401, {"errcode": "M_UNKNOWN_TOKEN", "error": "gone"}, UnknownToken, "log in afresh"),
        (429, {"errcode": "M_LIMIT_EXCEEDED", "error": "slow down"}, RateLimited, "slow down"),
        (502, b"<html>Bad gateway</html>", HomeserverUnavailable, "answered HTTP 502"),
        (500, {"errcode": "M_UNKNOWN", "error": "db down"}, HomeserverUnavailable, "HTTP 500"),
        (200, b"not json at all", HomeserverError, "sent no JSON"),
    ],
)
def test_sync_failures_are_our_errors(
    status: int, body: Any, error: type[ClaudeMatrixError], says: str
) -> None:
    fake = FakeHomeserver()
    fake.answer("GET", "/_matrix/client/v3/sync", status, body)
    with pytest.raises(ClaudeMatrixError) as caught:
        against(fake, lambda c: c.sync(None, 0))
    assert type(caught.value) is error and says in str(caught.value)


# --- rooms ---------------------------------------------------------------------------------


def test_members_are_those_joined_or_invited() -> None:
    def member(user: str, membership: str) -> dict[str, Any]:
        return {"type": "m.room.member", "state_key": user, "content": {"membership": membership}}

    fake = FakeHomeserver()
    chunk = [
        member("@a:x", "join"),
        member("@b:x", "invite"),
        member("@c:x", "leave"),
        member("@d:x", "ban"),
        {"type": "m.room.member", "content": {"membership": "join"}},  # no state key
        "garbage",
    ]
    fake.answer("GET", f"/_matrix/client/v3/rooms/{ROOM}/members", body={"chunk": chunk})
    assert against(fake, lambda c: c.members(ROOM)) == {"@a:x": "join", "@b:x": "invite"}
    (request,) = fake.seen
    assert token_of(request) == TOKEN and query_of(request) == {"not_membership": "leave"}


def test_creators_include_the_additional_ones() -> None:
    fake = FakeHomeserver()
    event = {"sender": "@a:x", "content": {"additional_creators": ["@b:x"]}}
    fake.answer("GET", f"/_matrix/client/v3/rooms/{ROOM}/state/m.room.create", body=event)
    assert against(fake, lambda c: c.creators(ROOM)) == {"@a:x", "@b:x"}
    assert token_of(fake.seen[0]) == TOKEN and query_of(fake.seen[0]) == {"format": "event"}


def test_what_i_may_not_see_is_nothing() -> None:
    fake = FakeHomeserver()
    fake.refuse("GET", f"/_matrix/client/v3/rooms/{ROOM}/state/", 403, "M_FORBIDDEN", "no")
    assert against(fake, lambda c: c.creators(ROOM)) == set()
    assert against(fake, lambda c: c.get_state(ROOM, "m.room.topic")) is None


def test_a_taken_alias_is_routed_around() -> None:
    fake = FakeHomeserver()
    create = "/_matrix/client/v3/createRoom"
    fake.refuse("POST", create, 400, "M_ROOM_IN_USE", "Room alias already taken", once=True)
    fake.answer("POST", create, body={"room_id": "!new:localhost"})
    room = against(
        fake,
        lambda c: c.create_room(
            public=False,
            power_levels={"users_default": 0},
            history_visibility="invited",
            alias_localpart="cm-lobby",
            invite=(UserID("@b:x"),),
        ),
    )
    assert room == "!new:localhost"
    first, second = (s.body for s in fake.requests_to(create))
    assert first["room_alias_name"] == "cm-lobby" and "room_alias_name" not in second
    for body in (first, second):
        assert (body["visibility"], body["preset"], body["invite"]) == (
            "private",
            "private_chat",
            ["@b:x"],
        )
        assert body["power_level_content_override"] == {"users_default": 0}
        (visibility,) = body["initial_state"]
        assert visibility["type"] == "m.room.history_visibility"
        assert visibility["content"] == {"history_visibility": "invited"}


def test_inviting_someone_already_there_is_no_failure() -> None:
    fake = FakeHomeserver()
    fake.refuse("POST", f"/_matrix/client/v3/rooms/{ROOM}/invite", 403, "M_FORBIDDEN", "joined")
    state = f"/_matrix/client/v3/rooms/{ROOM}/state/m.room.member/@b:x"
    fake.answer("GET", state, body={"membership": "join"})
    against(fake, lambda c: c.invite(ROOM, UserID("@b:x")))
    assert fake.seen[0].body == {"user_id": "@b:x"}


def test_an_invitation_refused_for_real_is_an_error() -> None:
    fake = FakeHomeserver()
    fake.refuse("POST", f"/_matrix/client/v3/rooms/{ROOM}/invite", 403, "M_FORBIDDEN", "no power")
    state = f"/_matrix/client/v3/rooms/{ROOM}/state/m.room.member/@b:x"
    fake.answer("GET", state, body={"membership": "leave"})
    with pytest.raises(Forbidden, match=r"inviting @b:x failed: no power \(M_FORBIDDEN\)"):
        against(fake, lambda c: c.invite(ROOM, UserID("@b:x")))


# --- people --------------------------------------------------------------------------------


def test_require_user_tells_no_such_user_from_a_private_profile() -> None:
    fake = FakeHomeserver()
    fake.answer("GET", "/_matrix/client/v3/profile/@known:localhost", body={"displayname": "K"})
    fake.refuse("GET", "/_matrix/client/v3/profile/@private:localhost", 403, "M_FORBIDDEN", "")
    fake.refuse("GET", "/_matrix/client/v3/profile/@nobody:localhost", 404, "M_NOT_FOUND", "")
    assert against(fake, lambda c: c.require_user(UserID("@known:localhost"))) == "K"
    assert against(fake, lambda c: c.require_user(UserID("@private:localhost"))) is None
    with pytest.raises(UnknownRecipient, match="no Matrix user @nobody:localhost exists"):
        against(fake, lambda c: c.require_user(UserID("@nobody:localhost")))


def test_a_user_on_an_unreachable_server_is_named_as_such() -> None:
    fake = FakeHomeserver()
    fake.refuse("GET", "/_matrix/client/v3/profile/@bob:far.example", 502, "M_UNKNOWN", "down")
    with pytest.raises(UnknownRecipient, match="on another homeserver, which this one cannot"):
        against(fake, lambda c: c.require_user(UserID("@bob:far.example")))


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"errcode": "M_UNKNOWN", "error": "Internal server error"}),  # database down
        (503, {"errcode": "M_UNKNOWN", "error": "busy"}),
        (502, b"<html>502 Bad Gateway</html>"),  # a reverse proxy, the homeserver behind down
    ],
)
def test_a_failing_homeserver_is_away_not_refusing(status: int, body: Any) -> None:
    """A send answered so stays in the outbox (HomeserverUnavailable), to go out later with
    the same transaction id; a refusal would drop it."""
    fake = FakeHomeserver()
    _unencrypted(fake)
    fake.answer("PUT", "/_matrix/client/v3/rooms/!room:localhost/send/", status, body)
    fake.answer("GET", "/_matrix/client/v3/profile/", status, body)
    with pytest.raises(HomeserverUnavailable, match=f"answered HTTP {status}"):
        against(fake, lambda c: c.send(ROOM, {"msgtype": "m.text", "body": "hi"}, "txn-1"))
    with pytest.raises(HomeserverUnavailable, match=f"answered HTTP {status}"):
        against(fake, lambda c: c.displayname(UserID("@bob:localhost")))


def test_changing_the_password_proves_the_old_one() -> None:
    fake = FakeHomeserver()
    fake.answer("POST", "/_matrix/client/v3/account/password", body={})
    against(fake, lambda c: c.change_password("old-pw", "new-pw-long"))
    (request,) = fake.seen
    assert token_of(request) == TOKEN
    assert request.body == {
        "new_password": "new-pw-long",
        "logout_devices": False,
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": ME},
            "password": "old-pw",
        },
    }
    fake.answers.clear()
    fake.refuse("POST", "/_matrix/client/v3/account/password", 401, "M_FORBIDDEN", "Wrong pw")
    with pytest.raises(Forbidden, match="changing the password failed: Wrong pw"):
        against(fake, lambda c: c.change_password("bad", "new-pw-long"))
