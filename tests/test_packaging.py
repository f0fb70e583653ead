"""The wheel carries configs/ and prompts/ and the compiled chat lane, and an installed copy
finds them without a checkout."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_installed_wheel_finds_its_configs_and_prompts(tmp_path: Path) -> None:
    subprocess.run(
        [
            os.environ.get("UV", "uv"),
            "build",
            "--wheel",
            "--out-dir",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for name in ("server", "models", "templates", "datasets", "deployment"):
        assert f"server/_shipped/configs/{name}.yaml" in names
    assert "server/_shipped/prompts/training_wizard.md" in names
    assert "server/_shipped/samples/support_chat.jsonl" in names
    assert any(n.startswith("tools/dataset_validator/_chat_lines.") for n in names)
    assert not any("/native/" in n for n in names)  # its C sources stay in the sdist

    # Run from outside the checkout with the extracted wheel first on the path.
    probe = (
        "from server.paths import shipped_dir; from server.settings import load_settings; "
        "s = load_settings(env={}); print(shipped_dir('configs')); print(shipped_dir('prompts')); "
        "from tools.dataset_validator import chat_lane; print(chat_lane.__file__); "
        "print(chat_lane.ChatLane.available())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    configs, prompts, lane, built = result.stdout.split()
    site = tmp_path / "site" / "server" / "_shipped"
    assert Path(configs) == site / "configs" and Path(prompts) == site / "prompts"
    assert Path(lane).is_relative_to(tmp_path / "site") and built == "True"
