"""Where the embedded homeserver keeps its files: all under <state dir>/homeserver (0700)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from claudematrix.config import Config
from claudematrix.paths import ensure_dir

__all__ = ["HomeserverPaths", "homeserver_paths"]


@dataclass(frozen=True)
class HomeserverPaths:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "homeserver.yaml"

    @property
    def inputs_path(self) -> Path:
        """The settings the current homeserver.yaml was generated from (port, server_name)."""
        return self.root / "homeserver.json"

    @property
    def log_config_path(self) -> Path:
        return self.root / "log_config.yaml"

    @property
    def log_path(self) -> Path:
        return self.root / "homeserver.log"

    @property
    def install_log_path(self) -> Path:
        return self.root / "install.log"

    @property
    def pid_path(self) -> Path:
        return self.root / "homeserver.pid"

    @property
    def lock_path(self) -> Path:
        return self.root / "homeserver.lock"

    @property
    def install_lock_path(self) -> Path:
        return self.root / "install.lock"

    @property
    def secret_path(self) -> Path:
        return self.root / "registration_shared_secret"

    @property
    def macaroon_path(self) -> Path:
        return self.root / "macaroon_secret_key"

    @property
    def form_secret_path(self) -> Path:
        return self.root / "form_secret"

    @property
    def signing_key_path(self) -> Path:
        return self.root / "signing.key"

    @property
    def tls_cert_path(self) -> Path:
        """The federation listener's certificate, made by this machine (claudematrix.federation)."""
        return self.root / "federation.crt"

    @property
    def tls_key_path(self) -> Path:
        return self.root / "federation.key"

    @property
    def db_path(self) -> Path:
        return self.root / "homeserver.db"

    @property
    def media_path(self) -> Path:
        return self.root / "media_store"

    @property
    def venv_path(self) -> Path:
        return self.root / "venv"


def homeserver_paths(config: Config) -> HomeserverPaths:
    return HomeserverPaths(ensure_dir(config.home / "homeserver"))
