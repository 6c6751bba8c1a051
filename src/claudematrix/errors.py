"""One error tree. Every message says what went wrong and what to do next, in one line.

The CLI prints `str(error)` and exits with `error.exit_code`; MCP tools return the same text
as a tool error. Nothing here may contain a secret.
"""

from __future__ import annotations

__all__ = [
    "ClaudeMatrixError",
    "ConfigError",
    "StateCorrupt",
    "InvalidInput",
    "BadLabel",
    "MessageTooLarge",
    "EmptyMessage",
    "UnknownRecipient",
    "UnknownMessage",
    "HomeserverUnavailable",
    "HomeserverInstallFailed",
    "HomeserverError",
    "VerificationFailed",
    "PairingRefused",
    "MachineNotPaired",
    "RegistrationFailed",
    "LockHeld",
    "PolicyRefused",
    "ConsentRequired",
    "CredentialsLost",
    "ModeChangeFailed",
    "NotFound",
    "Forbidden",
    "UnknownToken",
    "RateLimited",
    "InvalidParam",
    "RoomInUse",
    "UserInUse",
    "ERRCODES",
    "homeserver_error",
]


class ClaudeMatrixError(Exception):
    """Base of every error ClaudeMatrix raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(ClaudeMatrixError):
    exit_code = 3


class StateCorrupt(ClaudeMatrixError):
    """A state file could not be read; the file is kept aside, never deleted."""

    exit_code = 3


class CredentialsLost(StateCorrupt):
    """An identity with history has no usable account.json: never silently a new account."""


class InvalidInput(ClaudeMatrixError):
    exit_code = 2


class BadLabel(InvalidInput):
    pass


class MessageTooLarge(InvalidInput):
    pass


class EmptyMessage(InvalidInput):
    pass


class UnknownRecipient(InvalidInput):
    pass


class UnknownMessage(InvalidInput):
    pass


class HomeserverUnavailable(ClaudeMatrixError):
    exit_code = 4


class HomeserverInstallFailed(ClaudeMatrixError):
    exit_code = 4


class HomeserverError(ClaudeMatrixError):
    """The homeserver answered with an error we did not expect."""

    exit_code = 5

    def __init__(self, message: str, errcode: str | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode


class RegistrationFailed(HomeserverError):
    pass


# Matrix errcodes we act on, one class each (mautrix-python's errors/request.py does the same):
# callers catch the class, never match the text of a message.


class NotFound(HomeserverError):
    """M_NOT_FOUND: no such room, alias, state or user."""


class Forbidden(HomeserverError):
    """M_FORBIDDEN: not allowed (not a member, too little power, profile not shared...)."""


class UnknownToken(HomeserverError):
    """M_UNKNOWN_TOKEN: the access token is no longer valid."""


class RateLimited(HomeserverError):
    """M_LIMIT_EXCEEDED."""


class InvalidParam(HomeserverError):
    """M_INVALID_PARAM."""


class RoomInUse(HomeserverError):
    """M_ROOM_IN_USE: the room alias is taken."""


class UserInUse(RegistrationFailed):
    """M_USER_IN_USE: the username is taken."""


ERRCODES: dict[str, type[HomeserverError]] = {
    "M_NOT_FOUND": NotFound,
    "M_FORBIDDEN": Forbidden,
    "M_UNKNOWN_TOKEN": UnknownToken,
    "M_LIMIT_EXCEEDED": RateLimited,
    "M_INVALID_PARAM": InvalidParam,
    "M_ROOM_IN_USE": RoomInUse,
    "M_USER_IN_USE": UserInUse,
}


def homeserver_error(
    message: str, errcode: str | None, base: type[HomeserverError] = HomeserverError
) -> HomeserverError:
    """The error of `errcode`'s class, if it is a kind of `base`; else a plain `base`."""
    cls = ERRCODES.get(errcode or "", base)
    return (cls if issubclass(cls, base) else base)(message, errcode)


class LockHeld(ClaudeMatrixError):
    exit_code = 6


class PolicyRefused(ClaudeMatrixError):
    """An outbound path would carry something further than its label allows."""

    exit_code = 7


class EncryptionUnavailable(PolicyRefused):
    """The room is end-to-end encrypted and this process cannot encrypt for it: the message
    stays unsent rather than travel readable."""


class ConsentRequired(PolicyRefused):
    """Opening up or trusting needs the person, not just a request from a session."""


class ModeChangeFailed(ClaudeMatrixError):
    """A mode could not be applied; the previous one stays in force."""

    exit_code = 8


class VerificationFailed(ClaudeMatrixError):
    """Emoji verification of a device did not finish (no answer in time, or canceled)."""

    exit_code = 9


class PairingRefused(ClaudeMatrixError):
    """Another machine could not be paired: its card is wrong, or the certificate it
    presents is not the one on the card (a stale card, or an impostor)."""

    exit_code = 10


class MachineNotPaired(ClaudeMatrixError):
    """The recipient is on another machine that this one is not paired with (or no longer):
    nothing could reach it, so nothing is sent."""

    exit_code = 11
