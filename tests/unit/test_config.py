"""Settings: environment > plugin option > <state dir>/config.json > defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claudematrix.config import load_config
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
