"""A worker at work, inside the daemon: commands from its mail, one Claude Code run per room
at a time, progress streamed into the room.

- Who may command it: the person (this machine's owner account) and the Matrix IDs it was
  started with (`--allow`). Anyone else in its audience gets one short refusal and nothing
  runs; strangers' mail is held as requests before it ever gets here.
- A command is stored before it is acknowledged, under its event id: a replayed sync never
  runs anything twice. `cancel` from an allowed sender stops the room's run.
- Each room is one conversation: its first command starts a Claude Code session, later ones
  resume it. Progress is one message edited in place (at most every 2 s); the end is a new
  message with the outcome, duration and cost, split (never cut) if it is long.
- A run that was going when the worker died (kill -9, a crash) is reported in its room when
  the worker is back, and not run again; what was queued then runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from claudematrix.errors import ClaudeMatrixError
from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.local.untrusted import one_line
from claudematrix.service import Service
from claudematrix.store import Command
from claudematrix.store._worker import RUNNING
from claudematrix.types import Audience, Label, Message
from claudematrix.worker.claude_run import ClaudeRun, RunSettings, claude_command, end_process_group
from claudematrix.worker.report import final_parts, progress_text, refusal_text
from claudematrix.worker.spec import WorkerSpec

__all__ = ["WorkerHost", "EDIT_EVERY_S"]

EDIT_EVERY_S = 2.0
_WIND_DOWN_S = 10.0  # for runs cancelled by a stop to say so in their rooms
_SEEN = "worker_seen"
_CANCEL_WORDS = ("cancel", "stop")
# The narrowest label that reaches each audience: what goes back to whoever gave a command.
_LABEL_FOR = {
    Audience.SELF: Label.PRIVATE,
    Audience.PROJECT: Label.PRIVATE,
    Audience.MACHINE: Label.PRIVATE,
    Audience.TRUSTED: Label.TRUSTED,
    Audience.ANYONE: Label.PUBLIC,
}


class WorkerHost:
    def __init__(self, spec: WorkerSpec, service: Service, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.service = service
        self.log = log
        self._wake = asyncio.Event()
        self._rooms: dict[RoomID, asyncio.Task[None]] = {}
        self._runs: dict[RoomID, ClaudeRun] = {}
        self.doing = ""  # what it is running now, for `worker list`
        self._stopping = False

    @property
    def settings(self) -> RunSettings:
        return RunSettings(
            self.spec.claude,
            Path(self.spec.project),
            self.spec.permission_mode,
            self.spec.allowed_tools,
        )

    async def run(self, stop: asyncio.Event) -> None:
        store = self.service.store
        listener = self._wake_up
        self.service.mail_listeners.append(listener)
        if store.setting(_SEEN) is None:  # mail from before the worker existed is not for it
            store.set_setting(_SEEN, str(store.newest_id()))
        for user in self.spec.allow:  # the person named them: their mail is not a request
            store.set_accepted(user, True)
            with contextlib.suppress(ClaudeMatrixError):
                if any(r.inviter == user for r in store.requests()):
                    await self.service.accept(user, confirmed=True)
        await self._report_interrupted()
        await self._status("idle")
        try:
            while not stop.is_set():
                self._wake.clear()
                await self._take_new_mail()
                self._start_rooms()
                waiter = asyncio.create_task(self._wake.wait())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        finally:
            self.service.mail_listeners.remove(listener)
            await self._wind_down()

    def _wake_up(self, _newest: int) -> None:
        self._wake.set()

    async def _wind_down(self) -> None:
        """The worker stops: a run going now is cancelled and reported as such; what waits
        stays queued for when the worker runs again."""
        self._stopping = True
        for room, run in list(self._runs.items()):
            self.log(f"worker {self.spec.name}: stopping, so cancelling the run in {room}")
            await run.stop("cancelled")
        tasks = [t for t in self._rooms.values() if not t.done()]
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=_WIND_DOWN_S)
            for task in late:
                task.cancel()

    # --- commands ----------------------------------------------------------------------------

    async def _take_new_mail(self) -> None:
        store = self.service.store
        seen = int(store.setting(_SEEN) or 0)
        for message in store.incoming_after(seen):
            try:
                await self._take(message)
            except ClaudeMatrixError as exc:
                self.log(f"worker {self.spec.name}: message {message.local_id}: {exc}")
            store.set_setting(_SEEN, str(message.local_id))

    def _allowed(self, sender: UserID) -> bool:
        return sender == self.service.owner_user() or sender in self.spec.allow

    async def _take(self, message: Message) -> None:
        if not self._allowed(message.sender):
            self.log(f"worker {self.spec.name}: refused {message.sender}")
            await self._say(message.room_id, message.sender, refusal_text(self.spec.name))
            return
        text = message.body.strip()
        if text.lower() in _CANCEL_WORDS:
            run = self._runs.get(message.room_id)
            if run is None:
                await self._say(message.room_id, message.sender, "Nothing is running here.")
            else:
                await self._say(message.room_id, message.sender, "Cancelling the run.")
                await run.stop("cancelled")
            return
        command = self.service.store.add_command(
            message.event_id, message.room_id, message.sender, self._prompt(message)
        )
        if command is None:
            return  # stored before: never run twice
        ahead = self.service.store.ahead_of(command)
        if ahead:
            await self._say(
                message.room_id,
                message.sender,
                f"Queued: {ahead} ahead of it in this room. It runs when they are done.",
            )

    def _prompt(self, message: Message) -> str:
        where = self.service.where(message).value
        name = one_line(message.sender_name, 80)
        who = f'"{name}" <{message.sender}>' if name else f"<{message.sender}>"
        given = message.subject and not message.body.startswith(message.subject)
        subject = f"{message.subject}\n\n" if given else ""
        return (
            f"A command from {who} ({where}), sent to this worker over ClaudeMatrix:\n\n"
            f"{subject}{message.body}"
        )

    # --- runs ----------------------------------------------------------------------------------

    def _start_rooms(self) -> None:
        store = self.service.store
        rooms = {c.room_id for c in store.commands_in("queued")}
        for room in rooms:
            task = self._rooms.get(room)
            if task is None or task.done():
                self._rooms[room] = asyncio.create_task(self._work_through(room))

    async def _work_through(self, room: RoomID) -> None:
        store = self.service.store
        while not self._stopping and (waiting := store.waiting_in(room)):
            try:
                await self._run(waiting[0])
            except ClaudeMatrixError as exc:
                self.log(f"worker {self.spec.name}: run {waiting[0].id}: {exc}")
                store.end_command(waiting[0].id, "failed")

    async def _run(self, command: Command) -> None:
        store = self.service.store
        room = command.room_id
        headline = one_line(command.prompt.split("\n\n", 1)[-1], 80)
        resume = store.room_session(room)
        session = None if resume else str(uuid.uuid4())
        run = ClaudeRun(
            claude_command(self.settings, command.prompt, resume=resume, session_id=session),
            Path(self.spec.project),
        )
        self._runs[room] = run  # from here on, `cancel` reaches it
        started = time.monotonic()
        try:
            progress = await self._say(room, command.sender, f"Running: {headline}")
            store.start_command(command.id, progress)
            status = asyncio.create_task(self._status(f"running: {headline}"))
            try:
                store.set_process_group(command.id, await run.start())
            except OSError as exc:
                store.end_command(command.id, "failed")
                await self._say(room, command.sender, f"**failed**: could not start {exc}")
                return
            changed = asyncio.Event()
            editor = asyncio.create_task(self._keep_editing(room, command, progress, run, changed))
            try:
                outcome = await asyncio.wait_for(run.follow(changed.set), self.spec.timeout_s)
            except TimeoutError:
                await run.stop("timed out")
                outcome = "timed out"
            editor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await editor
            await status
        finally:
            self._runs.pop(room, None)
        if run.progress.session_id:
            store.set_room_session(room, run.progress.session_id)
        store.end_command(command.id, outcome)
        seconds = time.monotonic() - started
        if progress is not None:
            with contextlib.suppress(ClaudeMatrixError):
                await self._edit(room, command, progress, progress_text(run.progress, outcome))
        for part in final_parts(run.progress, outcome, seconds):
            await self._say(room, command.sender, part)
        await self._status("idle" if not self._runs else self.doing)

    async def _keep_editing(
        self,
        room: RoomID,
        command: Command,
        progress: EventID | None,
        run: ClaudeRun,
        changed: asyncio.Event,
    ) -> None:
        """The progress message, edited in place whenever the run moved on (at most every
        EDIT_EVERY_S): the latest text and the tool calls so far."""
        if progress is None:
            return
        while True:
            await changed.wait()
            changed.clear()
            with contextlib.suppress(ClaudeMatrixError):
                await self._edit(room, command, progress, progress_text(run.progress, None))
            await asyncio.sleep(EDIT_EVERY_S)

    async def _report_interrupted(self) -> None:
        """Runs that were going when the worker last died: said so, and never re-run."""
        store = self.service.store
        for command in store.commands_in(RUNNING):
            if command.process_group:
                end_process_group(command.process_group)
            store.end_command(command.id, "interrupted")
            with contextlib.suppress(ClaudeMatrixError):
                await self._say(
                    command.room_id,
                    command.sender,
                    "**interrupted**: the worker stopped (killed, or its machine went down) "
                    "while this ran; it was not run again. Send the command again to retry.",
                )

    # --- saying things -------------------------------------------------------------------------

    def _label_for(self, user: UserID) -> Label:
        return _LABEL_FOR[self.service.directory.proven_audience_of(user)]

    async def _say(self, room: RoomID, to: UserID, text: str) -> EventID | None:
        """Post into the room; queued if the homeserver is away (it goes when it is back)."""
        try:
            return await self.service.post_in_room(room, text, self._label_for(to), durable=True)
        except ClaudeMatrixError as exc:
            self.log(f"worker {self.spec.name}: posting in {room}: {exc}")
            return None

    async def _edit(self, room: RoomID, command: Command, event: EventID, text: str) -> None:
        await self.service.post_in_room(room, text, self._label_for(command.sender), replaces=event)

    async def _status(self, text: str) -> None:
        self.doing = text
        with contextlib.suppress(ClaudeMatrixError):
            await self.service.set_status(one_line(text, 120))
