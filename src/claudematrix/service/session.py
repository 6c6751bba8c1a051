"""Service: one identity's account, store and sync, wired together for the CLI and MCP."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from claudematrix import homeserver, policy
from claudematrix.config import Config
from claudematrix.errors import (
    ClaudeMatrixError,
    ConfigError,
    CredentialsLost,
    EmptyMessage,
    HomeserverError,
    HomeserverUnavailable,
    InvalidInput,
    LockHeld,
    MessageTooLarge,
    UnknownRecipient,
)
from claudematrix.identity import OWNER, Identity
from claudematrix.ids import EventID, RoomAlias, RoomID, UserID, parse_user_id
from claudematrix.local import layout
from claudematrix.local.untrusted import SUBJECT_MAX, unsafe_characters
from claudematrix.locks import FileLock
from claudematrix.matrix import MatrixClient, SessionCredentials, build_content
from claudematrix.matrix.content import (
    MAX_CONTENT_BYTES,
    MAX_ENCRYPTED_CONTENT_BYTES,
    MEMBER_STATE,
    content_size,
    read_fields,
)
from claudematrix.matrix.rooms import create_dm, harden
from claudematrix.matrix.sync import Invite, sync_once
from claudematrix.paths import identity_dir
from claudematrix.policy import opens_up
from claudematrix.service.accounts import (
    account_path,
    ensure_account,
    load_account,
    log_in_on_new_device,
    recover_account,
    remember_password,
    stored_password,
)
from claudematrix.service.directory import Directory
from claudematrix.service.homeserver_once import ensure_homeserver
from claudematrix.service.machine import is_local, is_local_device, machine_user
from claudematrix.service.pairing import require_reachable
from claudematrix.service.people import Accepted, People
from claudematrix.service.recipients import existing_user, parse_target
from claudematrix.service.task_clock import every_period
from claudematrix.session_env import SessionEnv
from claudematrix.store import Device, Person, Request, RoomRecord, Store, SyncBatch
from claudematrix.types import (
    MAX_MESSAGE_BYTES,
    Audience,
    Contact,
    Direction,
    Label,
    Message,
    Where,
)
from claudematrix.workspace import Workspace, detect_workspace

__all__ = ["Service", "WhoAmI", "Progress", "stderr_progress"]

Progress = Callable[[str], None]
_BACKOFF_START_S = 0.25
_BACKOFF_MAX_S = 10.0
_OWNER_LOOK_S = 5.0
# A long-poll that returns empty costs the homeserver a sync; idle identities ask rarely.
_LONG_POLL_MS = 120_000
_DEVICE_KEY = "device_ed25519"
_DEVICE_PROBLEM = "device_problem"
_DEVICE_NOTICE = "device_notice"
# An idle presence loop sleeps until its heartbeat, looking at the rooms it publishes into
# at least this often (each wake-up of each identity costs the daemon), and sooner after a
# failure. The hooks' task file is looked at by the process's one clock (task_clock.py).
_PRESENCE_RETRY_S = 5.0
_ROOMS_CHECK_S = 30.0
_ROOMS_HARDENED = "1"


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class WhoAmI:
    identity: str
    user_id: UserID
    display_name: str
    mode: str
    homeserver: str
    project: str
    branch: str
    host: str
    # This identity's encryption device: its ed25519 fingerprint, or why it cannot be used.
    device: str = ""
    device_problem: str = ""
    device_notice: str = ""  # what a new device (made when the old one's keys were lost) means


class Service:
    def __init__(
        self,
        config: Config,
        identity: Identity,
        *,
        progress: Progress = stderr_progress,
        long_lived: bool = False,
        env: SessionEnv | None = None,
    ) -> None:
        """`long_lived`: this process keeps a heartbeat going (the MCP server), so what it
        publishes may say "online"; a one-shot CLI command never does. `env`: the session's
        environment and folder (default: this process's own)."""
        self.config = config
        self.identity = identity
        self.progress = progress
        self.env = env or SessionEnv.current()
        self.dir = identity_dir(identity.slug)
        self.store = Store(self.dir / layout.STORE_DB)
        self.workspace: Workspace = detect_workspace(env=self.env)
        self.client: MatrixClient | None = None
        self._creds: SessionCredentials | None = None
        self._owner: UserID | None = None
        self._owner_next_look = 0.0
        self._sync_lock = FileLock(self.dir / layout.SYNC_LOCK)
        # A sent message's room key skipped these held devices: (user, device), by event.
        self.held_back: dict[EventID, list[tuple[str, str]]] = {}
        self.directory = Directory(
            config,
            identity,
            self.workspace,
            self.env,
            self.store,
            client=self.require_client,
            me=lambda: self.creds.user_id if self.creds else None,
            owner=self._owner_user,
            hidden=lambda: {machine_user(self.config), self.creds.user_id if self.creds else None},
            progress=self.progress,
        )
        self.directory.long_lived = long_lived
        # Presence is the business of the process that syncs this identity (the daemon).
        self.directory.keeps_presence = lambda: long_lived or self.try_own_sync()
        self.people = People(self)
        self._presence_wake: asyncio.Event | None = None  # while heartbeat_forever runs
        self.syncing_forever = False  # sync_forever runs: what comes arrives by itself
        self._no_new_device = False  # a new login for a lost device store failed here
        # Called with the newest message id whenever new mail is committed (a worker waits
        # on it); never blocks.
        self.mail_listeners: list[Callable[[int], None]] = []

    # --- life cycle ---------------------------------------------------------------------

    async def connect(
        self, *, start_homeserver: bool = True, initial_mode: Label | None = None
    ) -> None:
        """Homeserver running, account ready, profile current, lobby joined, outbox flushed.

        A new identity's mode (the configured default, or `initial_mode` if that is more
        private) is fixed before anything else, so one born secret is never seen.
        """
        self._settle_initial_mode(initial_mode)
        if self.config.embedded and start_homeserver:
            await ensure_homeserver(self.config, self.progress)
        creds = load_account(self.config, self.identity.slug)
        if creds is None:
            self._refuse_a_silent_new_account()
            creds = await ensure_account(
                self.config,
                self.identity.slug,
                self.identity.localpart_candidates(),
                is_owner=self.identity.is_owner,
            )
        self._adopt(creds)
        await self._harden_my_rooms()
        await self.directory.join_rooms()
        await self.publish_if_changed()
        await self.flush_outbox()

    def _settle_initial_mode(self, requested: Label | None) -> None:
        if self.store.setting("mode") is not None:
            return
        mode = Label.parse(self.config.default_mode)
        if requested is not None and not opens_up(mode, requested):
            mode = requested
        self.store.set_setting("mode", mode.value)

    def _refuse_a_silent_new_account(self) -> None:
        """No credentials: fine for a new identity; for one with history, a new account
        would silently lose every message sent to the old one."""
        known = self.store.own_user_id()
        if known is None and not self.store.has_history():
            return
        if self.identity.is_owner and not self.config.embedded and self.config.owner_user:
            return  # the person's own login, configured: logs in to their account again
        as_flag = "" if self.identity.from_session_env else f" --as {self.identity.name}"
        raise CredentialsLost(
            f"{account_path(self.identity.slug)} is missing, but this identity has history "
            f"as {known or 'an earlier account'}: run `claudematrix{as_flag} recover` to log "
            "in to it again (history and Matrix ID are kept)"
        )

    def _adopt(self, creds: SessionCredentials) -> None:
        known = self.store.own_user_id()
        if known is not None and known != creds.user_id:
            raise CredentialsLost(
                f"{account_path(self.identity.slug)} is for {creds.user_id}, but this "
                f"identity's history is {known}'s: put the right account.json back, or move "
                "it aside and run `claudematrix recover`"
            )
        self.store.set_own_user_id(creds.user_id)
        self._creds = creds
        self.client = MatrixClient(creds)

    async def recover(self, *, new_account: bool = False) -> UserID:
        """Log this identity in again after its credentials were lost, keeping its history:
        the same Matrix ID where the homeserver lets us reset its password, else (asked for
        explicitly) a new account."""
        if load_account(self.config, self.identity.slug) is not None:
            raise InvalidInput(
                f"{self.identity.name} still has its credentials: nothing to recover"
            )
        if self.config.embedded:
            await asyncio.to_thread(homeserver.start, self.config, self.progress)
        known = self.store.own_user_id()
        if new_account or known is None:
            self.store.forget_rooms()  # they were the old account's
            creds = await ensure_account(
                self.config,
                self.identity.slug,
                self.identity.localpart_candidates(),
                is_owner=self.identity.is_owner,
            )
            self.store.set_own_user_id(creds.user_id)
            return creds.user_id
        creds = await recover_account(self.config, self.identity.slug, known)
        return creds.user_id

    async def _harden_my_rooms(self) -> None:
        """Once: rooms I created before rooms stayed ours get owner-only power levels and
        history from the invitation on."""
        if self.store.setting("rooms_hardened") == _ROOMS_HARDENED:
            return
        client = self.require_client()
        for kind, state in (("circle", MEMBER_STATE), ("dm", [])):
            for room in self.store.rooms_of_kind(kind):
                try:
                    creators = await client.creators(room)
                    if client.user_id in creators:
                        await harden(client, room, state)
                    if creators == {client.user_id}:  # nobody else holds power there
                        self.store.save_room(RoomRecord(room, kind, sealed=True))
                except HomeserverError as exc:
                    self.progress(f"claudematrix: could not secure {room}: {exc}")
        self.store.set_setting("rooms_hardened", _ROOMS_HARDENED)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None
        self._sync_lock.release()
        self.store.close()

    def require_client(self) -> MatrixClient:
        if self.client is None:
            raise RuntimeError("Service.connect() must run first")
        return self.client

    @property
    def creds(self) -> SessionCredentials | None:
        """My account, read once it exists (it never changes under a running Service)."""
        if self._creds is None:
            self._creds = load_account(self.config, self.identity.slug)
        return self._creds

    # --- sync ---------------------------------------------------------------------------

    def try_own_sync(self) -> bool:
        """Become this identity's one sync consumer, if nobody else is."""
        return self._sync_lock.held or self._sync_lock.acquire(blocking=False)

    async def sync(self, timeout_ms: int = 0) -> list[int]:
        if not self.try_own_sync():
            raise LockHeld(
                f"another process is already syncing {self.identity.name}; "
                "its store is kept current, read it instead"
            )
        client = self.require_client()
        client.open_device(self.dir / layout.CRYPTO_DIR)
        step = functools.partial(
            sync_once,
            client,
            self.store,
            on_invite=self._on_invite,
            welcome=self._welcome,
            vouched=functools.partial(is_local_device, self.config),
        )
        outcome = await step(timeout_ms=timeout_ms)
        new, held = list(outcome.new_message_ids), outcome.held
        # Rooms joined from invites show their messages only in the next response.
        for _ in range(3):
            if not outcome.joined_rooms:
                break
            outcome = await step(timeout_ms=0)
            new += outcome.new_message_ids
            held += outcome.held
        if new or held:
            self.signal_new_mail(max(new, default=0))
        await self._replace_lost_device(client)
        self._note_device(self.require_client())
        return new

    async def _publish_device(self, client: MatrixClient) -> None:
        """Once per identity, where no sync did it yet: its device and keys on the homeserver,
        so that whoever writes to it can encrypt for it. (Not in `connect`: making the keys
        costs a new session about 0.4 s; its first sync publishes them right after.)"""
        if client.crypto is not None and not self.store.setting(_DEVICE_KEY):
            await client.crypto.maintain()
            await self._replace_lost_device(client)
            self._note_device(self.require_client())

    async def _replace_lost_device(self, client: MatrixClient) -> None:
        """The homeserver refused this device's keys: it holds other keys for the same
        device, whose store was lost. Log in again on a new device, with the same Matrix ID,
        drop the old one (nobody should encrypt for keys nobody has) and say what that
        means. Where no new login can be had, `_note_device` tells the way back."""
        if client.crypto is None or not client.crypto.upload_refused or self._no_new_device:
            return
        user = client.user_id
        try:
            creds = await log_in_on_new_device(self.config, self.identity.slug, user)
        except ClaudeMatrixError as exc:
            self._no_new_device = True  # not again after every sync of this process
            self.progress(f"claudematrix: {self.identity.name}: no new device: {exc}")
            return
        fresh = MatrixClient(creds)
        fresh.open_device(self.dir / layout.CRYPTO_DIR)
        self._creds, self.client = creds, fresh
        await client.log_out()
        if client.crypto is not None:
            client.crypto.discard()
            client.crypto = None
        await client.close()
        if fresh.crypto is not None:
            await fresh.crypto.maintain()
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
        notice = (
            f"new encryption device {creds.device_id} since {when}, same Matrix ID: the old "
            "device's keys were lost, so encrypted mail sent before then cannot be read "
            "here; people who confirmed the old device see a new one to confirm"
        )
        self.store.set_setting(_DEVICE_NOTICE, notice)
        self.progress(f"claudematrix: {self.identity.name}: {notice}")

    def _note_device(self, client: MatrixClient) -> None:
        """Keep what whoami and status say about the device current, and tell the person
        once if the homeserver refused its keys."""
        device = client.crypto
        if device is None:
            return
        if self.store.setting(_DEVICE_KEY) != device.device_key:
            self.store.set_setting(_DEVICE_KEY, device.device_key)
        problem = ""
        if device.upload_refused:
            problem = (
                f"the homeserver refused this device's keys: encrypted mail cannot be read "
                f"until it has a new one: move {account_path(self.identity.slug)} aside and "
                f"run `claudematrix --as {self.identity.name} recover` (same Matrix ID)"
            )
        if (self.store.setting(_DEVICE_PROBLEM) or "") != problem:
            self.store.set_setting(_DEVICE_PROBLEM, problem)
            if problem:
                self.progress(f"claudematrix: {self.identity.name}: {problem}")

    async def sync_forever(
        self, stop: asyncio.Event, on_health: Callable[[bool], None] | None = None
    ) -> None:
        """Long-poll until `stop`; back off while the homeserver is away, then resume.
        `on_health` hears whether sync is working, after every attempt. A long-lived sync
        starts the embedded homeserver again if it died, and sends what waits in the outbox
        as soon as the homeserver answers. The first sync does not wait: what was missed
        is in the store, and `on_health` told, at once."""
        self.syncing_forever = True
        try:
            await self._sync_until(stop, on_health)
        finally:
            self.syncing_forever = False

    async def _sync_until(
        self, stop: asyncio.Event, on_health: Callable[[bool], None] | None
    ) -> None:
        delay = _BACKOFF_START_S
        wait_ms = 0
        while not stop.is_set():
            try:
                await self.sync(timeout_ms=wait_ms)
                wait_ms = _LONG_POLL_MS
                if self.store.outbox_pending():
                    await self.flush_outbox()
            except (HomeserverUnavailable, HomeserverError) as exc:
                if on_health is not None:
                    on_health(False)
                if not isinstance(exc, HomeserverUnavailable):
                    self.progress(f"claudematrix: sync: {exc}")
                elif self.config.embedded and self.directory.long_lived:
                    await self._restart_homeserver()
                await _wait(stop, delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            if on_health is not None:
                on_health(True)
            delay = _BACKOFF_START_S

    async def _restart_homeserver(self) -> None:
        """The embedded homeserver stopped answering: start it (a no-op if it runs; under
        its lock, so the identities that notice at once start it once)."""
        try:
            await ensure_homeserver(self.config, self.progress, recent_s=0)
        except ClaudeMatrixError as exc:
            self.progress(f"claudematrix: the homeserver did not start again: {exc}")

    def _welcomes(self, user: UserID) -> bool:
        """Does mail from `user` go to my inbox (else: to requests, unopened)? Anyone in my
        audience, anyone I accepted or wrote to first, and every identity of this machine."""
        return (
            self.directory.proven_audience_of(user) is not Audience.ANYONE
            or user in self.store.accepted()
            or is_local(self.config, user)
        )

    async def _welcome(self, senders: set[UserID]) -> set[UserID]:
        return {user for user in senders if self._welcomes(user)}

    async def _on_invite(self, invite: Invite) -> RoomRecord | None:
        """Join invitations from my audience; hold the rest unopened as requests."""
        client = self.require_client()
        if invite.inviter in self.store.blocked():
            with contextlib.suppress(HomeserverError):
                await client.reject(invite.room_id)
            return None
        if not self._welcomes(invite.inviter):
            name = await client.displayname(invite.inviter) or ""
            self.store.add_request(
                Request(
                    invite.room_id,
                    invite.inviter,
                    name,
                    int(time.time() * 1000),
                    is_direct=invite.is_direct,
                )
            )
            self.signal_new_mail(0)
            return None
        return await self.join_invitation(invite.room_id, invite.inviter, invite.is_direct)

    async def join_invitation(
        self, room_id: RoomID, inviter: UserID, direct: bool
    ) -> RoomRecord | None:
        try:
            room = await self.require_client().join(room_id)
        except HomeserverUnavailable:
            raise
        except HomeserverError:  # a room that vanished must not stall sync
            return None
        return RoomRecord(room, "dm" if direct else "other", inviter if direct else None)

    async def publish_if_changed(self) -> None:
        """Publish my profile when what I would publish differs from what I last did."""
        name = self.directory.rich_name()  # what the SessionStart hook calls this session
        if self.store.setting("display_name") != name:
            self.store.set_setting("display_name", name)
        digest = hashlib.sha256(
            json.dumps(
                [self.directory.profile(), sorted(self.store.rooms_of_kind("lobby"))],
                sort_keys=True,
            ).encode()
        ).hexdigest()
        if self.store.setting("published_digest") != digest:
            await self.directory.publish()
            self.store.set_setting("published_digest", digest)

    async def heartbeat_forever(
        self, stop: asyncio.Event, online: Callable[[], bool] = lambda: True
    ) -> None:
        """Presence until `stop`: "online" only while `online()` says this session can hear
        its mail. A change of that (the caller calls `nudge_presence`), a new task from the
        hooks (looked for on the process's one clock) or a room joined (looked for at every
        wake, at least every half minute) is published at once; otherwise presence is only
        kept alive every heartbeat (with delayed events, without a room event:
        service/presence.py). "offline" on stop. Idle, the loop sleeps until then."""
        directory = self.directory
        timing = directory.timing
        last = 0.0
        said: tuple[bool, frozenset[str]] | None = None
        wake = self._presence_wake = asyncio.Event()
        task_news = False

        def look_at_task() -> None:
            nonlocal task_news
            if directory.task_changed():
                task_news = True
                wake.set()

        unwatch = every_period(look_at_task)
        try:
            with contextlib.suppress(HomeserverUnavailable, HomeserverError):
                await directory.presence.resume()
            while not stop.is_set():
                wake.clear()
                pause = _ROOMS_CHECK_S
                try:
                    if directory.task_changed() or task_news:
                        task_news = False
                        await self.publish_if_changed()
                    await directory.peer_rooms.follow()
                    rooms = frozenset(room for room, _kind in directory.presence_rooms())
                    now = (online(), rooms)
                    if now != said:
                        await directory.say_presence(online=now[0])
                        last, said = time.monotonic(), now
                    elif time.monotonic() - last >= timing.heartbeat_s:
                        await directory.refresh_presence()
                        last = time.monotonic()
                except (HomeserverUnavailable, HomeserverError) as exc:
                    self.progress(f"claudematrix: presence: {exc}")
                    said = None  # say it all again once the homeserver answers
                    pause = _PRESENCE_RETRY_S
                due = timing.heartbeat_s - (time.monotonic() - last)
                await _wait_either(stop, wake, max(0.0, min(pause, due)))
        finally:
            unwatch()
            self._presence_wake = None
        with contextlib.suppress(HomeserverUnavailable, HomeserverError):
            await directory.say_presence(online=False)

    def nudge_presence(self) -> None:
        """Whether this session can hear its mail changed: say so now."""
        if self._presence_wake is not None:
            self._presence_wake.set()

    @property
    def presence_ttl_s(self) -> float:
        """How long others may take this session for online after it is gone."""
        return self.directory.timing.ttl_ms / 1000

    def signal_new_mail(self, newest_id: int) -> None:
        """The cheap marker hooks stat before they look at the store, and the idle waiter's
        wake-up (claudematrix.local.markers); and whoever in this process listens."""
        from claudematrix.local.markers import signal_new_mail

        signal_new_mail(self.dir, newest_id, self.env.environ)
        for listener in self.mail_listeners:
            listener(newest_id)

    async def post_in_room(
        self,
        room: RoomID,
        text: str,
        label: Label,
        *,
        replaces: EventID | None = None,
        durable: bool = False,
    ) -> EventID:
        """Post `text` (Markdown, rendered for people's clients) into a room I am in, as far
        as `label` lets it go there; `replaces`: an event of mine it edits in place (a Matrix
        edit). `durable`: queued in the outbox first, so a homeserver away now gets it when it
        is back (HomeserverUnavailable says so); otherwise a failed post is gone."""
        record = self.store.room(room)
        audience = await self.directory.guard.audience(room, record.kind if record else "other")
        policy.check(label, audience, "this message", "someone in that room")
        content = build_content("", text, label, for_people=True)
        if replaces is not None:
            content = {
                **content,
                "body": "* " + str(content["body"]),
                "m.new_content": dict(content),
                "m.relates_to": {"rel_type": "m.replace", "event_id": replaces},
            }
        if durable:
            txn = uuid.uuid4().hex
            self.store.outbox_add(txn, room, UserID(str(room)), json.dumps(content))
            return (await self._deliver(txn, room, UserID(str(room)), content)).event_id
        client = self.require_client()
        if client.crypto is None and self.try_own_sync():
            client.open_device(self.dir / layout.CRYPTO_DIR)
        return await client.send(room, content, uuid.uuid4().hex, self._admit)

    # --- sending ------------------------------------------------------------------------

    def owner_user(self) -> UserID | None:
        """The person's own account on this machine, once it exists."""
        return self._owner_user()

    def _owner_user(self) -> UserID | None:
        # The owner's account may appear later: look again now and then until it does.
        if self._owner is None and time.monotonic() >= self._owner_next_look:
            creds = load_account(self.config, OWNER)
            self._owner = creds.user_id if creds else None
            self._owner_next_look = time.monotonic() + _OWNER_LOOK_S
        return self._owner

    def audience_of(self, user: UserID) -> Audience:
        return self.directory.audience_of(user)

    def where(self, message: Message) -> Where:
        """Where the other party of a message stands: same machine, remote (beta), ..."""
        other = message.sender if message.direction is Direction.IN else message.recipient
        if not other:
            return Where(Audience.ANYONE)
        return self.directory.where_of(other)

    async def send(
        self,
        to: str,
        text: str,
        *,
        subject: str = "",
        label: str | Label | None = None,
        reply_to: str | None = None,
        call_key: str | None = None,
    ) -> Message:
        """Send, queued in the outbox first. `call_key` makes a retried call idempotent: it
        fixes the Matrix transaction id, and the homeserver answers a repeated transaction
        with the event it already made."""
        if not text.strip():
            raise EmptyMessage("the message is empty: give the text to send")
        size = len(text.encode()) + len(subject.encode())
        if size > MAX_MESSAGE_BYTES:
            raise _too_large(size)
        if len(subject) > SUBJECT_MAX or unsafe_characters(subject):
            raise InvalidInput(
                f"the subject must be one line of at most {SUBJECT_MAX} characters, without "
                "control, escape or invisible characters: retype it as plain text"
            )
        chosen = (
            label if isinstance(label, Label) else (Label.parse(label) if label else self.mode())
        )
        reply_event = self.store.message(reply_to).event_id if reply_to else None
        owner = self._owner_user()
        if to.strip().lower() == "owner" and owner is not None:
            to = owner
        try:
            target = parse_target(to, self._all_contacts)
        except UnknownRecipient:
            # Someone who joined, or published a short name, since my last sync.
            await self.directory.refresh_memberships()
            if self.try_own_sync():
                await self.sync()
            target = parse_target(to, self._all_contacts)
        if target.user is not None:
            require_reachable(self.config, target.user)
            audience = self.directory.proven_audience_of(target.user)
            if audience is Audience.ANYONE:
                await self.directory.refresh_memberships()
                audience = self.directory.proven_audience_of(target.user)
            if audience is Audience.ANYONE:  # "no such user" says more than "refused"
                await existing_user(self.config, self.require_client(), target.user)
            policy.check(chosen, audience, "this message", target.label)
            room = await self._dm_for(target.user)
            recipient = target.user
            if audience is Audience.ANYONE:
                self.store.set_accepted(target.user, True)  # I wrote first: their replies are mail
        else:
            room = await self._enter_room(target.room, target.alias, target.label, chosen)
            record = self.store.room(room)
            audience = await self.directory.guard.audience(room, record.kind if record else "other")
            policy.check(chosen, audience, "this message", f"someone in {target.label}")
            recipient = UserID(str(room))
        sealed = await self.require_client().is_encrypted(room)
        limit = MAX_ENCRYPTED_CONTENT_BYTES if sealed else MAX_CONTENT_BYTES
        people = self._people_read(room, target.user)
        content = build_content(subject, text, chosen, reply_event, for_people=people)
        if people and content_size(content) > limit:  # the HTML copy is the first to go
            content = build_content(subject, text, chosen, reply_event)
        if content_size(content) > limit:
            raise _too_large(size)
        txn = _txn_id(call_key) if call_key else uuid.uuid4().hex
        self.store.outbox_add(txn, room, recipient, json.dumps(content))
        return await self._deliver(txn, room, recipient, content)

    def _people_read(self, room: RoomID, peer: UserID | None) -> bool:
        """Whether a person (in a Matrix client, not a session) reads what goes to `peer`
        or into `room`: the owner, or anyone who publishes no ClaudeMatrix profile."""
        me = self.creds.user_id if self.creds else None
        readers = {peer} if peer is not None else set(self.store.members(room)) - {me}
        owner = self._owner_user()
        return owner in readers or bool(readers - self.store.publishers(readers))

    async def _enter_room(
        self, room: RoomID | None, alias: str | None, name: str, label: Label
    ) -> RoomID:
        """A room to post in; joining one is itself visible there, so that is checked first."""
        client = self.require_client()
        found = room or await client.resolve_alias(RoomAlias(str(alias)))
        if found is None:
            raise UnknownRecipient(f"no room {name} exists: check the alias")
        record = self.store.room(found)
        if record is None or not record.joined:
            policy.check(label, Audience.ANYONE, "this message", f"everyone in {name}")
            try:
                found = await client.join(found)
            except HomeserverError as exc:
                raise UnknownRecipient(
                    f"cannot post in {name}: {exc.message}; check the room, or ask to be invited"
                ) from None
        return found

    async def _deliver(
        self, txn: str, room: RoomID, recipient: str, content: dict[str, object]
    ) -> Message:
        client = self.require_client()
        if client.crypto is None and self.try_own_sync():  # the device is the sync owner's
            client.open_device(self.dir / layout.CRYPTO_DIR)
        try:
            event_id = await client.send(room, content, txn, self._admit)
        except HomeserverUnavailable as exc:
            raise HomeserverUnavailable(
                f"{exc} (the message is queued and goes out with the next claudematrix "
                "command once the homeserver is back)"
            ) from None
        except HomeserverError:
            self.store.outbox_remove(txn)  # refused for good: retrying cannot help
            raise
        subject, label, text = read_fields(content)
        message = Message(
            event_id=event_id,
            room_id=room,
            sender=client.user_id,
            sender_name=self.directory.rich_name(),
            direction=Direction.OUT,
            subject=subject,
            body=text,
            label=label,
            origin_ts=int(time.time() * 1000),
            recipient=UserID(recipient),
            read=True,
        )
        self.store.outbox_done(txn, message)
        await self._publish_device(client)
        if client.crypto is not None and client.crypto.held_back:
            self.held_back[event_id] = list(client.crypto.held_back)
        return self.store.message(event_id)

    def _admit(self, user: str, current: list[tuple[str, str]]) -> set[str]:
        who = UserID(user)
        local = self.directory.proven_audience_of(who) in (Audience.PROJECT, Audience.MACHINE)
        decided = policy.admit_devices(who, self.store.devices(who), current, same_machine=local)
        self.store.note_devices(decided)
        return {d.device_id for d in decided if d.state == "pinned"}

    def devices(self, user: str | None = None) -> list[Device]:
        return self.store.devices(parse_user_id(user.strip()) if user else None)

    def confirm_device(self, user: str, device_id: str, *, confirmed: bool) -> UserID:
        return self.people.confirm_device(user, device_id, confirmed=confirmed)

    async def flush_outbox(self) -> int:
        """Send what an earlier run queued; one refused message never blocks the others."""
        sent = 0
        for txn, room, recipient, content in self.store.outbox_pending():
            try:
                await self._deliver(txn, room, recipient, json.loads(content))
                sent += 1
            except HomeserverError as exc:
                self.progress(f"claudematrix: a queued message to {recipient} was refused: {exc}")
        return sent

    async def _dm_for(self, user: UserID) -> RoomID:
        """A DM that holds just me and `user` right now: a third party let in is removed, and
        a conversation I cannot make private again (or that they left) moves to a new room."""
        room = self.store.dm_room(user)
        if room is not None and await self.directory.guard.dm_holds_only(room, user):
            return room
        return await self._open_dm(user)

    async def _open_dm(self, user: UserID) -> RoomID:
        client = self.require_client()
        name = await existing_user(self.config, client, user)
        room = await create_dm(client, user)
        self.store.save_room(RoomRecord(room, "dm", user, sealed=True))
        self.store.commit_sync(SyncBatch(next_batch=None, people=[Person(user, name)]))
        return room

    # --- reading (local store only: fast, and works while the homeserver is away) --------

    def inbox(self, *, include_read: bool = False, limit: int = 50) -> list[Message]:
        return self.store.inbox(include_read=include_read, limit=limit)

    def read(self, ref: str) -> Message:
        message = self.store.message(ref)
        if message.local_id is not None and not message.read:
            self.store.mark_read(message.local_id)
        return self.store.message(str(message.local_id))

    def search(self, query: str, *, limit: int = 20) -> list[Message]:
        if not query.strip():
            raise InvalidInput("the search query is empty: give words to look for")
        return self.store.search(query, limit=limit)

    def _all_contacts(self) -> list[Contact]:
        return self.contacts(include_hidden=True)

    def contacts(self, *, include_hidden: bool = False) -> list[Contact]:
        return self.directory.contacts(include_hidden=include_hidden)

    def whoami(self) -> WhoAmI:
        creds = self.creds
        return WhoAmI(
            identity=self.identity.name,
            user_id=creds.user_id if creds else UserID(""),
            display_name=self.directory.rich_name(),
            mode=self.mode().value,
            homeserver=self.config.homeserver_url,
            project=self.workspace.project,
            branch=self.workspace.branch,
            host=self.workspace.host,
            device=self.store.setting(_DEVICE_KEY) or "",
            device_problem=self.store.setting(_DEVICE_PROBLEM) or "",
            device_notice=self.store.setting(_DEVICE_NOTICE) or "",
        )

    def unread_count(self) -> int:
        return self.store.unread_count()

    def message(self, ref: str) -> Message:
        """One message by its id, left unread."""
        return self.store.message(ref)

    def mark_announced(self, messages: list[Message]) -> None:
        """Claude has seen these headers already: the hooks need not announce them again."""
        newest = max((m.local_id or 0 for m in messages), default=0)
        if newest:
            self.store.mark_announced(newest)

    def requests(self) -> list[Request]:
        """Mail from outside my audience, held unopened until the person accepts it."""
        return self.people.requests()

    # --- what only the person may change (claudematrix.service.people) ------------------

    def mode(self) -> Label:
        return self.directory.mode()

    async def set_mode(self, mode: str | Label, *, confirmed: bool) -> Label:
        return await self.people.set_mode(mode, confirmed=confirmed)

    async def set_status(self, text: str) -> str:
        return await self.people.set_status(text)

    async def trust(self, user: str, *, confirmed: bool) -> UserID:
        return await self.people.trust(user, confirmed=confirmed)

    async def untrust(self, user: str) -> UserID:
        return await self.people.untrust(user)

    async def block(self, user: str) -> UserID:
        return await self.people.block(user)

    async def unblock(self, user: str) -> UserID:
        return await self.people.unblock(user)

    async def accept(self, user: str, *, confirmed: bool) -> Accepted:
        return await self.people.accept(user, confirmed=confirmed)

    async def change_password(self, new_password: str) -> UserID:
        """Set the password the person logs in with from any Matrix client."""
        current = stored_password(self.identity.slug)
        if self.client is None or current is None:
            raise ConfigError(
                "this account's password is not managed by ClaudeMatrix; change it in your client"
            )
        await self.client.change_password(current, new_password)
        remember_password(self.identity.slug, new_password)
        return self.client.user_id


def _txn_id(call_key: str) -> str:
    return "cm" + hashlib.sha256(call_key.encode()).hexdigest()[:30]


def _too_large(size: int) -> MessageTooLarge:
    return MessageTooLarge(
        f"the message is {size} bytes; the limit is about {MAX_CONTENT_BYTES // 1024} KiB "
        f"({MAX_ENCRYPTED_CONTENT_BYTES // 1024} KiB in an end-to-end encrypted room): split "
        "it, or send a path to a file instead"
    )


async def _wait_either(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
