"""Column mapping and dropped records through the tools: validate_datasets records the choice
in the draft, validating again keeps it, and finalize_package reads the data the same way and
says in package.yaml and the README what it did."""

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support import connect
from tests.test_package_mcp import call, complete_draft, package_settings, read_draft

MAPPING = {"customer_msg": "prompt", "agent_reply": "completion"}


def support_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "ticket_id": f"T-{i}",
            "customer_msg": f"How do I reset password {i}?",
            "agent_reply": f"Open Settings, then Security ({i}).",
        }
        for i in range(count)
    ]


def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


def package_lines(path: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / name).read_text().splitlines()]


async def test_a_column_mapping_is_kept_and_packaged(tmp_path: Path) -> None:
    root = data_root(tmp_path)
    (root / "tickets.json").write_text(json.dumps({"data": support_rows(20)}, indent=2))
    async with connect(package_settings(tmp_path, root)) as client:
        draft_id = (await call(client, "create_draft", {"title": "tickets"}))["draft_id"]
        arguments = {"draft_id": draft_id, "datasets": ["tickets.json"], "validation_split": 0}
        unmapped = await call(client, "validate_datasets", arguments)
        (error,) = unmapped["datasets"][0]["errors"]
        assert error["code"] == "unknown_columns" and "columns" not in unmapped
        mapped = await call(client, "validate_datasets", {**arguments, "columns": MAPPING})
        again = await call(client, "validate_datasets", arguments)  # omitted: as recorded
        recorded = (await read_draft(client, draft_id))["datasets"]["payload"]["columns"]
        assert mapped["valid"] and again["valid"] and again["columns"] == MAPPING == recorded
        cleared = await call(client, "validate_datasets", {**arguments, "columns": {}})
        assert not cleared["valid"] and "columns" not in cleared

        draft_id = await complete_draft(
            client, datasets=("tickets.json",), validation_split=0, reading={"columns": MAPPING}
        )
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    path = Path(written["path"])
    manifest = yaml.safe_load((path / "package.yaml").read_text())
    assert manifest["data"]["columns"] == MAPPING
    assert manifest["data"]["shape"] == "prompt_completion"
    first = package_lines(path, manifest["data"]["train"]["path"])[0]
    assert set(first) == {"prompt", "completion"}
    assert "`customer_msg` -> `prompt`" in (path / "README.md").read_text()
