"""claudematrix.config: settings from the environment > the plugin option > <state dir>/config.json
> defaults; the embedded homeserver unless a URL is set; bad values are one-line errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from claudematrix.config import DEFAULT_PORT, DEFAULT_SERVER_NAME, load_config
from claudematrix.errors import ConfigError


def test_a_new_sessions_mode_from_every_source(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("CLAUDEMATRIX_MODE", "CLAUDEMATRIX_PLUGIN_MODE"):
        monkeypatch.delenv(var, raising=False)
    assert load_config().default_mode == "private"
    config = isolated_home / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "mode": "trusted"}))
    assert load_config().default_mode == "trusted"
    monkeypatch.setenv("CLAUDEMATRIX_PLUGIN_MODE", "")  # the plugin option, unset
    assert load_config().default_mode == "trusted"
    monkeypatch.setenv("CLAUDEMATRIX_PLUGIN_MODE", "Secret")
    assert load_config().default_mode == "secret"
    monkeypatch.setenv("CLAUDEMATRIX_MODE", "public")
    assert load_config().default_mode == "public"


def test_a_mode_that_is_not_one_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_MODE", "invisible")
    with pytest.raises(ConfigError) as error:
        load_config()
    assert "secret, private, trusted, public" in str(error.value)


def test_the_embedded_homeserver_is_the_default(isolated_home: Path) -> None:
    config = load_config()
    assert config.embedded and config.external_url is None
    assert config.port == DEFAULT_PORT == 18008
    assert config.homeserver_url == "http://127.0.0.1:18008"
    assert config.server_name == DEFAULT_SERVER_NAME == "localhost"
    assert config.home == isolated_home


def test_a_homeserver_url_switches_to_an_external_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_HOMESERVER", "https://matrix.example.org/")
    config = load_config()
    assert not config.embedded
    assert config.external_url == config.homeserver_url == "https://matrix.example.org"


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("CLAUDEMATRIX_HOMESERVER", "matrix.example.org", "must be an http(s) URL"),
        ("CLAUDEMATRIX_HOMESERVER", "ftp://matrix.example.org", "must be an http(s) URL"),
        ("CLAUDEMATRIX_PORT", "eighteen", "must be a port number"),
        ("CLAUDEMATRIX_PORT", "0", "out of range"),
        ("CLAUDEMATRIX_PORT", "65536", "out of range"),
    ],
)
def test_a_bad_setting_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, says: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as error:
        load_config()
    assert says in str(error.value) and "\n" not in str(error.value)


def test_the_machine_id_is_chosen_once_and_kept(isolated_home: Path) -> None:
    first = load_config().machine_id
    assert len(first) == 8 and int(first, 16) >= 0
    assert load_config().machine_id == first
    stored = isolated_home / "config.json"
    assert json.loads(stored.read_text())["machine_id"] == first
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


def test_config_json_holds_settings_and_the_environment_wins(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config()
    stored = isolated_home / "config.json"
    settings = {"server_name": "example.org", "port": 28008, "machine_name": "build box"}
    stored.write_text(json.dumps({**json.loads(stored.read_text()), **settings}))
    config = load_config()
    assert (config.server_name, config.port, config.machine_name) == (
        "example.org",
        28008,
        "build box",
    )
    monkeypatch.setenv("CLAUDEMATRIX_PORT", "38008")
    monkeypatch.setenv("CLAUDEMATRIX_SERVER_NAME", "env.example.org")
    config = load_config()
    assert (config.server_name, config.port) == ("env.example.org", 38008)


def test_config_json_that_is_not_an_object_is_refused(isolated_home: Path) -> None:
    isolated_home.mkdir(parents=True)
    (isolated_home / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_config()


def test_the_synapse_venv_setting_expands_the_home_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CLAUDEMATRIX_SYNAPSE_VENV", "~/synapse")
    assert load_config().synapse_venv == tmp_path / "synapse"


def test_secrets_never_show_in_its_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {
        "CLAUDEMATRIX_REGISTRATION_SHARED_SECRET": "s3cret-shared",
        "CLAUDEMATRIX_REGISTRATION_TOKEN": "s3cret-token",
        "CLAUDEMATRIX_PASSWORD": "s3cret-password",
        "CLAUDEMATRIX_ACCESS_TOKEN": "s3cret-access",
    }
    for var, value in secrets.items():
        monkeypatch.setenv(var, value)
    config = load_config()
    assert config.registration_shared_secret == "s3cret-shared"
    assert config.owner_access_token == "s3cret-access"
    shown = repr(config)
    assert "homeserver='http://127.0.0.1:18008'" in shown
    assert not any(value in shown for value in secrets.values()), shown


def test_the_server_name_is_chosen_at_first_initialisation_and_kept(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.2:8448")
    config = load_config()
    assert config.server_name == "127.0.0.2:8448"  # other machines reach it by that name
    assert config.federation is not None and str(config.federation) == "127.0.0.2:8448"
    assert json.loads((isolated_home / "config.json").read_text())["server_name"] == (
        "127.0.0.2:8448"
    )
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.3:8448")  # later: the name stays
    assert load_config().server_name == "127.0.0.2:8448"


def test_an_existing_install_keeps_localhost_when_federation_is_set_later(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config()
    stored = isolated_home / "config.json"
    before = json.loads(stored.read_text())
    before.pop("server_name")  # as every install made before server names were recorded
    stored.write_text(json.dumps(before))
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.2:8448")
    assert load_config().server_name == DEFAULT_SERVER_NAME


def test_binding_every_interface_does_not_become_the_server_name(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "0.0.0.0:8448")
    assert load_config().server_name == DEFAULT_SERVER_NAME
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "no port")
    with pytest.raises(ConfigError, match="ADDRESS:PORT"):
        load_config()


def test_stored_settings_change_and_forget(isolated_home: Path) -> None:
    from claudematrix.config import stored_setting, update_stored_config

    update_stored_config({"homeserver": "https://m.example.org", "registration_token": "t"})
    assert load_config().external_url == "https://m.example.org"
    update_stored_config({"server_name": "back"}, forget=("homeserver", "registration_token"))
    config = load_config()
    assert config.embedded and config.registration_token is None
    assert config.server_name == "back" and stored_setting("homeserver") is None
    assert stored_setting("machine_id") == config.machine_id  # the rest is kept
