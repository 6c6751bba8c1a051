"""What `server init` accepts, and the homeserver.yaml it writes from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from claudematrix.errors import ConfigError, StateCorrupt
from claudematrix.team.layout import TeamDir
from claudematrix.team.settings import (
    TeamSettings,
    load_settings,
    parse_listen,
    parse_public_url,
    parse_server_name,
    synapse_yaml_settings,
)

SETTINGS = TeamSettings("example.org", "https://matrix.example.org", "127.0.0.1", 8008)


@pytest.mark.parametrize("name", ["example.org", "matrix.example.org:8448", "[::1]:8448"])
def test_server_names(name: str) -> None:
    assert parse_server_name(f" {name} ") == name


@pytest.mark.parametrize("bad", ["", "https://example.org", "a b", "x/y"])
def test_a_server_name_that_is_not_one_says_what_to_give(bad: str) -> None:
    with pytest.raises(ConfigError, match="e.g. example.org"):
        parse_server_name(bad)


def test_public_urls_and_listen_addresses() -> None:
    assert parse_public_url("https://m.example.org/") == "https://m.example.org"
    with pytest.raises(ConfigError, match="https://matrix.example.org"):
        parse_public_url("m.example.org")
    assert parse_listen("0.0.0.0:8008") == ("0.0.0.0", 8008)
    assert parse_listen("[::1]:8008") == ("::1", 8008)
    for bad in ("8008", "host:", "host:99999", ":80"):
        with pytest.raises(ConfigError, match="ADDRESS:PORT"):
            parse_listen(bad)


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:8008"), ("0.0.0.0", "http://127.0.0.1:8008"),
     ("::", "http://[::1]:8008"), ("10.0.0.5", "http://10.0.0.5:8008")],
)  # fmt: skip
def test_the_host_reaches_its_own_synapse_where_it_listens(host: str, url: str) -> None:
    settings = TeamSettings("example.org", "https://m.example.org", host, 8008)
    assert settings.local_url == url


def test_the_config_is_production_shaped(tmp_path: Path) -> None:
    team = TeamDir(tmp_path)
    config = synapse_yaml_settings(SETTINGS, team, {"dbname": "synapse", "host": "db"})
    assert config["database"]["name"] == "psycopg2"
    assert config["database"]["args"] == {
        "dbname": "synapse",
        "host": "db",
        "cp_min": 5,
        "cp_max": 10,
    }
    assert config["enable_registration"] and config["registration_requires_token"]
    assert not config["enable_media_repo"] and not config["url_preview_enabled"]
    assert config["federation_domain_whitelist"] == []
    assert config["listeners"][0]["resources"] == [{"names": ["client"], "compress": False}]
    assert config["public_baseurl"] == "https://matrix.example.org/"
    # Rate limits are set (not Synapse's defaults, not unlimited) and admit an agent's burst.
    assert 10 <= config["rc_message"]["per_second"] < 1000
    assert config["rc_login"]["failed_attempts"]["per_second"] < 1
    # What sessions need, as on the embedded homeserver.
    assert config["max_event_delay_duration"] and config["presence"] == {"enabled": False}
    assert config["limit_profile_requests_to_users_who_share_rooms"] is True


def test_federation_only_when_asked(tmp_path: Path) -> None:
    settings = TeamSettings("example.org", "https://m.example.org", "127.0.0.1", 8008, True)
    config = synapse_yaml_settings(settings, TeamDir(tmp_path), {})
    assert config["listeners"][0]["resources"][0]["names"] == ["client", "federation"]
    assert "federation_domain_whitelist" not in config


def test_settings_of_a_folder_that_is_not_a_team_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="server init"):
        load_settings(TeamDir(tmp_path))
    (tmp_path / "team.json").write_text('{"nonsense": 1}')
    with pytest.raises(StateCorrupt, match="team.json"):
        load_settings(TeamDir(tmp_path))
