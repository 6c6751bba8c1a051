"""The plugin's manifests validate strictly, and it installs from its own marketplace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import claudematrix
from e2e.support.claude_cli import PLUGIN_ID, REPO, Claude

pytestmark = pytest.mark.e2e

MASTER = REPO / "examples" / "master-marketplace"


def _problems(report: dict[str, Any]) -> list[str]:
    manifest = report.get("manifest") or {}
    problems = [str(p) for p in manifest.get("errors", []) + manifest.get("warnings", [])]
    for item in report.get("contents", []):
        problems += [str(p) for p in item.get("errors", []) + item.get("warnings", [])]
    for finding in (report.get("directory") or {}).get("findings", []):
        problems.append(f"{finding.get('code')}: {finding.get('message')}")
    return problems


@pytest.mark.parametrize("path", [REPO, REPO / ".claude-plugin" / "plugin.json", MASTER])
def test_validate_strict_passes_without_warnings(claude: Claude, path: Path) -> None:
    code, report = claude.validate(path, strict=True)
    assert code == 0, json.dumps(report, indent=2)
    assert report["success"] is True
    assert _problems(report) == []


def test_versions_agree() -> None:
    """The version is written in the package and the plugin manifest; the CLI and the
    package metadata read the package's."""
    plugin = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert claudematrix.__version__ == plugin["version"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "claudematrix.__version__" in pyproject
    cli = subprocess.run(
        [sys.executable, "-m", "claudematrix", "--version"], capture_output=True, text=True
    )
    assert cli.stdout.strip() == f"claudematrix, version {plugin['version']}", cli


def test_master_marketplace_pins_this_repo() -> None:
    master = json.loads((MASTER / ".claude-plugin" / "marketplace.json").read_text())
    (entry,) = [p for p in master["plugins"] if p["name"] == "claudematrix"]
    source = entry["source"]
    assert source["source"] in ("url", "github")
    assert source.get("sha") or source.get("ref")


def test_install_from_local_marketplace(claude: Claude) -> None:
    claude.marketplace_add(REPO)
    claude.plugin_install(PLUGIN_ID)

    (installed,) = [p for p in claude.plugin_list() if p["id"] == PLUGIN_ID]
    assert installed["enabled"] is True
    plugin = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert installed["version"] == plugin["version"]
    assert Path(installed["readFromFolder"]) == REPO  # a local marketplace loads in place
    server = installed["mcpServers"]["claudematrix"]
    assert server["command"] == "python3"
    assert server["args"][-1] == "mcp" and server["args"][0].endswith("scripts/launch.py")
