"""Run as a script by the team server's Synapse venv python (psycopg2, PyYAML), never imported:
connects to PostgreSQL as Synapse would and prints one JSON object of what it found.

Input on stdin, so no secret is on a command line: {"dsn": "..."} (at init), or {"config":
"<homeserver.yaml>"} (health: the connection Synapse itself is configured with).
Output keys: error + detail on failure; else args (the connection keywords, from a dsn),
database, collate, ctype, encoding, schema_version (None before Synapse's first start) and
synapse_schema (the version the installed Synapse wants).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any


def _synapse_schema() -> int | None:
    spec = importlib.util.find_spec("synapse")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(list(spec.submodule_search_locations)[0]) / "storage" / "schema" / "__init__.py"
    found = re.search(r"^SCHEMA_VERSION = (\d+)", source.read_text(), re.MULTILINE)
    return int(found.group(1)) if found else None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _connection_args(
    request: dict[str, Any], psycopg2: Any
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if "dsn" in request:
        from psycopg2.extensions import parse_dsn

        try:
            return parse_dsn(request["dsn"]), None
        except psycopg2.ProgrammingError as error:
            return None, {"error": "bad-dsn", "detail": _first_line(error)}
    import yaml

    with open(request["config"]) as handle:
        config = yaml.safe_load(handle) or {}
    database = config.get("database") or {}
    if database.get("name") != "psycopg2":
        return None, {"error": "not-postgres", "detail": str(database.get("name"))}
    args = {k: v for k, v in (database.get("args") or {}).items() if not k.startswith("cp_")}
    return args, None


def main() -> None:
    request = json.load(sys.stdin)
    try:
        import psycopg2
    except ImportError as error:
        print(json.dumps({"error": "no-driver", "detail": _first_line(error)}))
        return
    args, failed = _connection_args(request, psycopg2)
    if failed is not None or args is None:
        print(json.dumps(failed))
        return
    out: dict[str, Any] = {"synapse_schema": _synapse_schema()}
    if "dsn" in request:
        out["args"] = args
    try:
        conn = psycopg2.connect(**{"connect_timeout": 5, **args})
    except psycopg2.Error as error:
        out.update(error="connect", detail=_first_line(error))
        print(json.dumps(out))
        return
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT current_database(), datcollate, datctype, "
                "pg_encoding_to_char(encoding) FROM pg_database "
                "WHERE datname = current_database()"
            )
            out["database"], out["collate"], out["ctype"], out["encoding"] = cur.fetchone()
            cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            out["schema_version"] = None
            if cur.fetchone()[0]:
                cur.execute("SELECT version FROM schema_version")
                row = cur.fetchone()
                out["schema_version"] = int(row[0]) if row else None
    except psycopg2.Error as error:
        out.update(error="query", detail=_first_line(error))
    finally:
        conn.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
