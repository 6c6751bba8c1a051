"""claudematrix.local.mailbox: the store queries the hooks run without claudematrix.store,
against the schema the store makes (claiming mail: tests/unit/hooks/test_announce.py)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from claudematrix.local import mailbox
from claudematrix.store import Store
from claudematrix.types import Audience


def test_no_store_or_no_schema_is_no_mailbox(tmp_path: Path) -> None:
    assert mailbox.connect(str(tmp_path / "nobody")) is None  # never created by a hook
    assert not (tmp_path / "nobody").exists()
    (tmp_path / "blank").mkdir()
    sqlite3.connect(tmp_path / "blank" / "store.db").close()  # a file, no schema yet
    assert mailbox.connect(str(tmp_path / "blank")) is None


def test_settings_and_unread_as_the_store_keeps_them(tmp_path: Path) -> None:
    with Store(tmp_path / "store.db") as store:
        store.set_setting("mode", "trusted")
    conn = mailbox.connect(str(tmp_path))
    assert conn is not None
    try:
        assert mailbox.setting(conn, "mode") == "trusted"
        assert mailbox.setting(conn, "display_name") is None
        assert mailbox.unread_count(conn) == 0
    finally:
        conn.close()


def test_where_a_sender_stands_is_an_audience_value() -> None:
    said = set(re.findall(r"(?:THEN|ELSE) '([^']+)'", mailbox._WHERE))
    assert said == {a.value for a in Audience} - {Audience.SELF.value}
