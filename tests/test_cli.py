"""The console script: --help everywhere, check-config, the demo."""

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import CONSOLE_SCRIPT, isolated_env

pytestmark = pytest.mark.slow  # every test runs the console script


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONSOLE_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=isolated_env(tmp_path, **env),
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )


@pytest.mark.parametrize("args", [[], ["serve"], ["check-config"], ["demo"]])
def test_help(tmp_path: Path, args: list[str]) -> None:
    result = run(tmp_path, *args, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: training-package-mcp")
    assert "--config-dir" in result.stdout


def test_check_config_prints_the_effective_settings(tmp_path: Path) -> None:
    result = run(tmp_path, "check-config", HF_TOKEN="hf_not_printed")
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["server"]["storage"]["sqlite"]["path"] == str(tmp_path / "drafts.sqlite3")
    assert effective["secrets (from the environment)"]["hf_token"] == "set"
    assert "hf_not_printed" not in result.stdout + result.stderr
    assert "configuration is valid" in result.stderr


def test_check_config_names_a_misspelt_key(tmp_path: Path) -> None:
    overlay = tmp_path / "conf"
    overlay.mkdir()
    (overlay / "server.yaml").write_text("logging:\n  levl: DEBUG\n")
    result = run(tmp_path, "check-config", "--config-dir", str(overlay))
    assert result.returncode == 2
    assert f"{overlay / 'server.yaml'}: logging.levl: unknown key (did you mean 'level'?)" in (
        result.stderr
    )
    assert result.stdout == ""


def test_serve_refuses_a_bad_config_before_touching_stdout(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", TRAINING_PACKAGE_MCP__SERVER__LOGGING__LEVEL="LOUD")
    assert result.returncode == 2
    assert "logging.level" in result.stderr and result.stdout == ""


def test_demo_walks_the_wizard_offline(tmp_path: Path) -> None:
    result = run(tmp_path, "demo", HF_HUB_OFFLINE="1")
    assert result.returncode == 0, result.stdout + result.stderr
    for tool in (
        "create_draft",
        "search_models",
        "select_model",
        "apply_template",
        "validate_datasets",
        "estimate_deployment",
        "finalize_package",
    ):
        assert f"tools/call {tool}" in result.stdout
    assert "the server asks the user" in result.stdout  # finalize confirmed the warnings
    # the demo's drafts live in a temporary database, not the user's; the package stays
    assert not (tmp_path / "drafts.sqlite3").exists()
    (owner,) = (tmp_path / "packages").iterdir()  # the package root, a folder per owner
    (package,) = owner.iterdir()
    assert {"package.yaml", "train.py", "trl.yaml", "axolotl.yaml", "README.md"} <= {
        p.name for p in package.iterdir()
    }
