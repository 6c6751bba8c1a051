"""claudematrix.homeserver._yaml: the YAML written for Synapse's config: block mappings,
flow lists of scalars, every string a JSON string, so no value can be misread (no bare
"no", "on" or "1e3")."""

from __future__ import annotations

import pytest

from claudematrix.homeserver._yaml import dump_yaml


def test_settings_as_synapse_reads_them() -> None:
    config = {
        "server_name": "localhost",
        "enable_registration": False,
        "pid_file": None,
        "rc_message": {"per_second": 0.5, "burst_count": 10},
        "listeners": [
            {"port": 18008, "bind_addresses": ["127.0.0.1"], "resources": [{"names": ["client"]}]}
        ],
        "trusted_key_servers": [],
        "database": {},
    }
    assert dump_yaml(config, header="Written by ClaudeMatrix.\nDo not edit.") == (
        "# Written by ClaudeMatrix.\n"
        "# Do not edit.\n"
        'server_name: "localhost"\n'
        "enable_registration: false\n"
        "pid_file: null\n"
        "rc_message:\n"
        "  per_second: 0.5\n"
        "  burst_count: 10\n"
        "listeners:\n"
        "  - port: 18008\n"
        '    bind_addresses: ["127.0.0.1"]\n'
        "    resources:\n"
        '      - names: ["client"]\n'
        "trusted_key_servers: []\n"
        "database: {}\n"
    )


@pytest.mark.parametrize("word", ["no", "on", "yes", "off", "1e3", "0x10", "~", "", "a: b", "#x"])
def test_strings_yaml_could_misread_are_quoted(word: str) -> None:
    assert dump_yaml({"value": word, "list": [word]}) == (f'value: "{word}"\nlist: ["{word}"]\n')


def test_keys_that_are_not_plain_names_are_quoted() -> None:
    assert dump_yaml({"m.room.message": 1, "plain_name": 2}) == (
        '"m.room.message": 1\nplain_name: 2\n'
    )


def test_what_yaml_here_cannot_hold_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot write set as a YAML scalar"):
        dump_yaml({"names": {"a", "b"}})
