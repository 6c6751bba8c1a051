"""The embedded Synapse: concurrency, recovery, lockdown, accounts, external mode."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from claudematrix.config import Config, load_config
from claudematrix.errors import (
    ConfigError,
    HomeserverInstallFailed,
    HomeserverUnavailable,
    RegistrationFailed,
)
from claudematrix.homeserver import (
    HomeserverStatus,
    ensure_installed,
    register_account,
    registration_shared_secret,
    start,
    status,
    stop,
)
from support import free_port, wait_until
from support.synapse import config_path_of, synapse_pids, synapse_venv

from .conftest import SharedHomeserver

pytestmark = pytest.mark.integration

OwnHomeserver = Callable[[], Config]


def versions_answer(url: str) -> bool:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/_matrix/client/versions", timeout=2) as resp:
            return resp.status == 200 and "versions" in json.loads(resp.read())
    except OSError:
        return False


def pgrep(home: Path) -> list[int]:
    """What `pgrep -f` sees for this home's config (an outside view of the process table)."""
    pattern = str(config_path_of(home)).replace(".", r"\.")
    out = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True)
    return sorted(int(line) for line in out.stdout.split())


def load_yaml(path: Path) -> dict[str, object]:
    """Parse with the PyYAML that Synapse itself uses (it is in the Synapse venv)."""
    code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    out = subprocess.run(
        [str(synapse_venv() / "bin" / "python"), "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    value = json.loads(out.stdout)
    assert isinstance(value, dict)
    return value


def test_eight_concurrent_starts_run_exactly_one_synapse(
    own_homeserver: OwnHomeserver, isolated_home: Path, tmp_path: Path
) -> None:
    config = own_homeserver()
    gate = tmp_path / "go"
    child = (
        "import os, sys, time\n"
        "from claudematrix.config import load_config\n"
        "from claudematrix.homeserver import start\n"
        "open(sys.argv[1] + '.ready', 'w').close()\n"
        "deadline = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    assert time.monotonic() < deadline, 'no go signal'\n"
        "    time.sleep(0.005)\n"
        "state = start(load_config())\n"
        "print(state.pid)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child, str(tmp_path / f"c{i}"), str(gate)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for i in range(8)
    ]
    try:
        wait_until(
            lambda: all((tmp_path / f"c{i}.ready").exists() for i in range(8)),
            60,
            "all 8 starters to be ready",
        )
        gate.touch()  # release all 8 at once
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip()
    reported = {int(out.strip()) for out, _ in results}
    assert len(reported) == 1, f"starters saw different servers: {reported}"
    serving = pgrep(isolated_home)
    assert serving == synapse_pids(isolated_home)
    assert len(serving) == 1, f"expected one Synapse, found {serving}"
    pid_file = int((isolated_home / "homeserver" / "homeserver.pid").read_text())
    assert serving == [pid_file] == sorted(reported)
    assert versions_answer(config.homeserver_url)
    # The starters have exited: the daemon outlived them, and a status check agrees.
    state = status(config)
    assert state == HomeserverStatus(
        installed=True,
        running=True,
        pid=pid_file,
        url=config.homeserver_url,
        log_path=isolated_home / "homeserver" / "homeserver.log",
    )


def test_kill_9_is_noticed_and_start_recovers(
    own_homeserver: OwnHomeserver, isolated_home: Path
) -> None:
    config = own_homeserver()
    first = start(config)
    assert first.running and first.pid is not None
    assert start(config).pid == first.pid  # idempotent: no second server

    os.kill(first.pid, signal.SIGKILL)
    wait_until(lambda: not status(config).running, 10, "status to notice the dead server")
    assert status(config).pid is None

    second = start(config)
    assert second.running and second.pid not in (None, first.pid)
    assert versions_answer(config.homeserver_url)
    assert synapse_pids(isolated_home) == [second.pid]

    # A pid file naming a live process that is not our Synapse (pid reuse) is stale too.
    assert stop(config) is True
    assert synapse_pids(isolated_home) == []
    assert not (isolated_home / "homeserver" / "homeserver.pid").exists()
    (isolated_home / "homeserver" / "homeserver.pid").write_text(f"{os.getpid()}\n")
    assert status(config).running is False
    assert status(config).pid is None
    third = start(config)
    assert third.running and third.pid != os.getpid()
    assert stop(config) is True
    assert stop(config) is False


def test_state_is_private_and_server_is_locked_down(shared_homeserver: SharedHomeserver) -> None:
    home = shared_homeserver.home
    hs_dir = home / "homeserver"
    assert home.stat().st_mode & 0o777 == 0o700
    assert hs_dir.stat().st_mode & 0o777 == 0o700
    secret = hs_dir / "registration_shared_secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert len(secret.read_text().strip()) >= 32
    for path in hs_dir.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"

    settings = load_yaml(hs_dir / "homeserver.yaml")
    assert settings["enable_registration"] is False
    assert settings["server_name"] == "localhost"
    listeners = settings["listeners"]
    assert isinstance(listeners, list) and len(listeners) == 1
    (listener,) = listeners
    assert listener["bind_addresses"] == ["127.0.0.1"]
    assert listener["port"] == shared_homeserver.port
    assert listener["tls"] is False and listener["x_forwarded"] is False
    assert [name for res in listener["resources"] for name in res["names"]] == ["client"]
    assert settings["trusted_key_servers"] == []
    assert settings["federation_domain_whitelist"] == []
    assert settings["report_stats"] is False
    assert settings["url_preview_enabled"] is False
    assert settings["presence"] == {"enabled": False}
    assert settings["registration_shared_secret_path"] == str(secret)
    assert "registration_shared_secret" not in settings
    assert settings["caches"] == {"sync_response_cache_duration": 0}

    # And the running server really listens on loopback only.
    listening = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, port = local.split(":")
        if state == "0A" and int(port, 16) == shared_homeserver.port:
            listening.append(addr)
    assert listening == ["0100007F"]
    v6 = Path("/proc/net/tcp6")
    if v6.exists():
        for line in v6.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            assert not (state == "0A" and int(local.split(":")[1], 16) == shared_homeserver.port)


def test_register_account_and_name_in_use(
    shared_homeserver: SharedHomeserver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in shared_homeserver.env.items():
        monkeypatch.setenv(key, value)
    config = load_config()
    secret = registration_shared_secret(config)
    name = f"alice-{uuid.uuid4().hex[:8]}"
    account = register_account(shared_homeserver.url, secret, name, "pw-1", displayname="Alice")
    assert account.user_id == f"@{name}:localhost"
    assert account.access_token and account.device_id
    assert account.access_token not in repr(account)

    with pytest.raises(RegistrationFailed) as caught:
        register_account(shared_homeserver.url, secret, name, "pw-2")
    assert caught.value.errcode == "M_USER_IN_USE"
    assert "pw-2" not in str(caught.value) and secret not in str(caught.value)

    with pytest.raises(RegistrationFailed) as wrong:
        register_account(shared_homeserver.url, "not-the-secret", f"{name}-x", "pw")
    assert "secret is wrong" in str(wrong.value)

    admin = register_account(shared_homeserver.url, secret, f"{name}-admin", "pw", admin=True)
    assert admin.user_id == f"@{name}-admin:localhost"


def test_register_account_when_server_is_down_says_run_up() -> None:
    with pytest.raises(HomeserverUnavailable, match="claudematrix up"):
        register_account(f"http://127.0.0.1:{free_port()}", "s", "bob", "pw")


def test_external_homeserver_is_never_started(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("CLAUDEMATRIX_HOMESERVER", dead)
    config = load_config()
    assert not config.embedded
    with pytest.raises(HomeserverUnavailable, match="not answering"):
        start(config)
    assert synapse_pids(isolated_home) == []
    assert stop(config) is False
    assert status(config).running is False
    assert not (isolated_home / "homeserver").exists()  # nothing local was even prepared
    with pytest.raises(ConfigError, match="CLAUDEMATRIX_REGISTRATION_SHARED_SECRET"):
        registration_shared_secret(config)
    monkeypatch.setenv("CLAUDEMATRIX_REGISTRATION_SHARED_SECRET", "given")
    assert registration_shared_secret(load_config()) == "given"


def test_external_homeserver_that_answers(
    shared_homeserver: SharedHomeserver, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_HOMESERVER", shared_homeserver.url)
    state = start(load_config())
    assert state.running and state.pid is None and state.url == shared_homeserver.url
    assert synapse_pids(isolated_home) == []


def test_port_taken_by_another_program(own_homeserver: OwnHomeserver, isolated_home: Path) -> None:
    config = own_homeserver()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.port))
        squatter.listen()
        with pytest.raises(HomeserverUnavailable, match="already used by another program"):
            start(config)
    assert synapse_pids(isolated_home) == []


def test_port_taken_by_another_homeserver(
    own_homeserver: OwnHomeserver,
    shared_homeserver: SharedHomeserver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_PORT", str(shared_homeserver.port))
    with pytest.raises(HomeserverUnavailable, match="not this ClaudeMatrix's"):
        start(load_config())


def test_synapse_dying_at_startup_reports_the_log(
    own_homeserver: OwnHomeserver, isolated_home: Path
) -> None:
    config = own_homeserver()
    hs_dir = isolated_home / "homeserver"
    hs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (hs_dir / "signing.key").write_text("this is not a key\n")
    with pytest.raises(HomeserverUnavailable) as caught:
        start(config)
    message = str(caught.value)
    assert "stopped during start-up" in message and str(hs_dir / "homeserver.log") in message
    assert "\n" not in message
    assert synapse_pids(isolated_home) == []
    assert not (hs_dir / "homeserver.pid").exists()


def test_port_change_regenerates_config_and_keeps_accounts(
    own_homeserver: OwnHomeserver, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    config = own_homeserver()
    start(config)
    secret = registration_shared_secret(config)
    register_account(config.homeserver_url, secret, "carol", "pw")

    new_port = free_port()
    monkeypatch.setenv("CLAUDEMATRIX_PORT", str(new_port))
    moved = load_config()
    with pytest.raises(ConfigError, match="claudematrix down"):
        start(moved)  # still running on the old port: say so, do not start a second one
    assert len(synapse_pids(isolated_home)) == 1

    assert stop(config) is True
    state = start(moved)
    assert state.running and state.url == f"http://127.0.0.1:{new_port}"
    settings = load_yaml(isolated_home / "homeserver" / "homeserver.yaml")
    assert isinstance(settings, dict) and isinstance(settings["listeners"], list)
    assert settings["listeners"][0]["port"] == new_port
    assert registration_shared_secret(moved) == secret
    with pytest.raises(RegistrationFailed) as caught:
        register_account(moved.homeserver_url, secret, "carol", "pw")
    assert caught.value.errcode == "M_USER_IN_USE"


def test_install_failure_is_one_line_with_the_log(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAUDEMATRIX_SYNAPSE_VENV")
    # Make pip fail fast and offline: no index, no local wheels.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    config = load_config()
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(HomeserverInstallFailed) as caught:
        ensure_installed(config, lines.append)
    assert time.monotonic() - started < 120
    message = str(caught.value)
    assert "\n" not in message and "install.log" in message and "claudematrix up" in message
    assert any("installing Synapse" in line for line in lines)
    assert status(config).installed is False
    log = (isolated_home / "homeserver" / "install.log").read_text()
    assert "matrix-synapse" in log
