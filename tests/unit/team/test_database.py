"""What `server init` and `server health` conclude from the probe of PostgreSQL. The probe
itself runs in the Synapse venv (here against a port nothing listens on); a real database is
in tests/integration/test_team_server.py."""

from __future__ import annotations

import dataclasses

import pytest

from claudematrix.errors import ConfigError
from claudematrix.team.database import DatabaseReport, probe_dsn, require_synapse_ready
from support import free_port
from support.synapse import synapse_venv

GOOD = DatabaseReport(None, "", {"dbname": "synapse"}, "synapse", "C", "C", "UTF8", 94, 94)


def test_a_c_database_is_ready() -> None:
    assert GOOD.locale_problem is None and GOOD.migrated
    assert require_synapse_ready(GOOD) == {"dbname": "synapse"}


def test_a_database_with_another_collation_is_refused_with_the_fix() -> None:
    wrong = dataclasses.replace(GOOD, collate="en_US.UTF-8", ctype="en_US.UTF-8")
    with pytest.raises(ConfigError) as caught:
        require_synapse_ready(wrong)
    assert "LC_COLLATE is 'en_US.UTF-8'" in str(caught.value)
    assert "CREATE DATABASE synapse ENCODING 'UTF8' LC_COLLATE 'C'" in str(caught.value)


def test_schema_behind_the_installed_synapse_is_not_migrated() -> None:
    assert not dataclasses.replace(GOOD, schema_version=93).migrated
    assert not dataclasses.replace(GOOD, schema_version=None).migrated


@pytest.mark.parametrize(
    ("error", "says"),
    [("bad-dsn", "not a PostgreSQL connection string"), ("connect", "cannot connect"),
     ("no-driver", "could not check")],
)  # fmt: skip
def test_each_failure_is_one_line_saying_what_to_do(error: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        require_synapse_ready(dataclasses.replace(GOOD, error=error, detail="why"))


def test_the_probe_reports_a_database_nobody_serves() -> None:
    python = synapse_venv() / "bin" / "python"
    port = free_port()
    report = probe_dsn(python, f"postgresql://u:secret@127.0.0.1:{port}/db")
    assert report.error == "connect" and not report.reachable, report
    assert report.synapse_schema is not None and report.synapse_schema > 90
    assert probe_dsn(python, "not a dsn at all").error == "bad-dsn"
