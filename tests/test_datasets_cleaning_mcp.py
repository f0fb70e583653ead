"""Column mapping and dropped records through the tools: validate_datasets records the choice
in the draft, validating again keeps it, and finalize_package reads the data the same way and
says in package.yaml and the README what it did."""

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support import connect
from tests.test_datasets_validator import chat_line
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
    assert "'customer_msg' -> prompt" in (path / "README.md").read_text()


async def test_dropped_records_are_warnings_to_accept_and_the_package_says_so(
    tmp_path: Path,
) -> None:
    root = data_root(tmp_path)
    lines = [chat_line(f"How do I reset password {i}?", f"Open Settings ({i}).") for i in range(20)]
    lines[3] = lines[3][:40] + "\n"  # cut off
    lines[9] = chat_line("Is anyone there?", "   ")  # an empty answer
    (root / "support.jsonl").write_text("".join(lines))
    async with connect(package_settings(tmp_path, root)) as client:
        draft_id = await complete_draft(
            client, datasets=("support.jsonl",), reading={"drop_invalid": True}
        )
        recorded = await read_draft(client, draft_id)
        issues = recorded["datasets"]["issues"]
        summary = (await call(client, "get_draft", {"draft_id": draft_id}))["steps"]
        held = await call(client, "finalize_package", {"draft_id": draft_id})
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
        arguments = {"draft_id": draft_id, "datasets": ["support.jsonl"], "validation_split": 0.2}
        again = await call(client, "validate_datasets", arguments)  # omitted: as recorded
        strict = await call(client, "validate_datasets", {**arguments, "drop_invalid": False})
    (line,) = [step for step in summary if step["step"] == "datasets"]
    assert "18 of 20 records valid (2 invalid left out)" in line["summary"]
    dropped = [i for i in issues if i["code"] in ("invalid_json", "empty_content")]
    assert [i["severity"] for i in dropped] == ["warning", "warning"]
    assert all("in records left out" in i["message"] for i in dropped)
    assert sum("in records left out" in w["message"] for w in held["warnings"]) == 2
    assert not held["written"] and written["written"]
    (dataset,) = again["datasets"]
    assert again["valid"] and again["drop_invalid"] is True
    assert (dataset["dropped"], dataset["dropped_counts"]) == (
        2,
        {"invalid_json": 1, "empty_content": 1},
    )
    assert all(error["dropped"] for error in dataset["errors"])
    assert not strict["valid"] and "drop_invalid" not in strict
    assert "dropped" not in strict["datasets"][0]
    path = Path(written["path"])
    manifest = yaml.safe_load((path / "package.yaml").read_text())
    assert manifest["datasets"][0]["dropped"] == 2 and manifest["data"]["dropped"] == 2
    train, held_out = manifest["data"]["train"], manifest["data"]["validation"]
    assert train["records"] + (held_out["records"] if held_out else 0) == 18
    assert "2 invalid records were left out" in (path / "README.md").read_text()
