"""The wheel carries configs/ and prompts/ and no native code of its own, and an installed copy
finds them without a checkout and validates a chat file."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds a wheel and runs it in another interpreter

ROOT = Path(__file__).resolve().parent.parent


def test_installed_wheel_finds_its_configs_and_prompts_and_validates(tmp_path: Path) -> None:
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
    assert wheel.name.endswith("-py3-none-any.whl")  # pure Python: nothing compiled
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = archive.read(metadata).decode()
        archive.extractall(tmp_path / "site")
    assert "Requires-Dist: msgspec" in requires  # the chat lane's decoder
    for name in ("server", "models", "templates", "datasets", "deployment"):
        assert f"server/_shipped/configs/{name}.yaml" in names
    assert "server/_shipped/prompts/training_wizard.md" in names
    assert "server/_shipped/samples/support_chat.jsonl" in names
    native = (".c", ".h", ".so", ".pyd", ".dylib")
    assert not [n for n in names if n.endswith(native)]

    # Run from outside the checkout with the extracted wheel first on the path.
    probe = (
        "from server.paths import shipped_dir; from server.settings import load_settings; "
        "s = load_settings(env={}); print(shipped_dir('configs')); print(shipped_dir('prompts')); "
        "from tools.dataset_validator import chat_lane; print(chat_lane.__file__); "
        "from tools.dataset_validator.hub import HubAccess; "
        "from tools.dataset_validator.roots import allowed_roots; "
        "from tools.dataset_validator.sources import Sources; "
        "from tools.dataset_validator.service import ValidationRequest, validate_datasets; "
        "hub = HubAccess(endpoint=None, timeout_s=1); "
        "sources = Sources(s.datasets, allowed_roots([shipped_dir('samples')]), hub, None); "
        "request = ValidationRequest(datasets=['support_chat.jsonl'], max_seq_length=2048); "
        "r = validate_datasets(request, s.datasets, sources, hub).datasets[0]; "
        "print(f'{r.format}:{r.valid_records}/{r.records}')"
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
    configs, prompts, lane, validated = result.stdout.split()
    site = tmp_path / "site" / "server" / "_shipped"
    assert Path(configs) == site / "configs" and Path(prompts) == site / "prompts"
    assert Path(lane).is_relative_to(tmp_path / "site")
    kind, counts = validated.split(":")
    valid, records = map(int, counts.split("/"))
    assert kind == "chat" and valid == records > 0, validated
