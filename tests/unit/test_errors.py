"""One error tree: Matrix errcodes map to classes (callers catch classes, never match text)."""

from __future__ import annotations

import pytest

from claudematrix.errors import (
    ERRCODES,
    ClaudeMatrixError,
    Forbidden,
    HomeserverError,
    NotFound,
    RegistrationFailed,
    UserInUse,
    homeserver_error,
)


@pytest.mark.parametrize(("errcode", "cls"), sorted(ERRCODES.items()))
def test_each_errcode_has_its_class(errcode: str, cls: type[HomeserverError]) -> None:
    error = homeserver_error("what failed", errcode)
    assert type(error) is cls and error.errcode == errcode
    assert isinstance(error, HomeserverError) and isinstance(error, ClaudeMatrixError)
    assert str(error) == "what failed"


def test_unknown_or_missing_errcodes_stay_plain() -> None:
    for errcode in ("M_UNKNOWN", "M_SOMETHING_NEW", None, ""):
        assert type(homeserver_error("x", errcode)) is HomeserverError


def test_a_base_class_narrows_what_an_errcode_may_become() -> None:
    assert type(homeserver_error("x", "M_USER_IN_USE", RegistrationFailed)) is UserInUse
    # Not a kind of registration failure: stays the base asked for.
    assert type(homeserver_error("x", "M_NOT_FOUND", RegistrationFailed)) is RegistrationFailed
    assert issubclass(NotFound, HomeserverError) and issubclass(Forbidden, HomeserverError)
