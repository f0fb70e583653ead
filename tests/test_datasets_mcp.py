"""validate_datasets and list_datasets through an in-process MCP client: the draft, client roots,
progress, cancellation, errors, and the bundled sample."""

import json
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root

from server.app import build_server
from server.settings import Secrets, Settings, load_settings
from tests.fake_hub import serve_fake_hub
from tests.support import connect, hub_env, isolated_env, record_steps
from tests.test_datasets_tokens import add_tiny_model

DATA = Path(__file__).parent / "data" / "datasets"
TOOLS = ("validate_datasets", "list_datasets")


def only_data_root(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings overrides: tests/data/datasets as the one root, no bundled samples."""
    prefix = "TRAINING_PACKAGE_MCP__DATASETS__"
    return {f"{prefix}ROOTS": json.dumps([str(DATA)]), f"{prefix}BUNDLED_SAMPLES": "false", **extra}


def data_settings(tmp_path: Path, **extra: str) -> Settings:
    return load_settings(env=isolated_env(tmp_path, **only_data_root(tmp_path, **extra)))


async def call(client: Client, tool: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
    result = await client.call_tool(tool, arguments, **kwargs)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def error_of(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return result.content[0].text


async def read_draft(client: Client, draft_id: str) -> dict[str, Any]:
    (content,) = (await client.read_resource(f"package://drafts/{draft_id}")).contents
    return json.loads(content.text)  # type: ignore[union-attr]


async def test_the_tools_are_listed_with_compact_schemas(tmp_path: Path) -> None:
    async with connect(data_settings(tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools if t.name in TOOLS}
    validate, listing = tools["validate_datasets"], tools["list_datasets"]
    assert set(validate.input_schema["properties"]) == {
        "datasets",
        "validation_split",
        "validation_dataset",
        "draft_id",
        "convert",
        "columns",
        "drop_invalid",
        "drop_media",
    }
    assert validate.input_schema["required"] == ["datasets"]
    assert set(listing.input_schema["properties"]) == {"query", "source"}
    assert {"datasets", "split", "preview", "valid"} <= set(validate.output_schema["properties"])
    assert validate.annotations.read_only_hint is False and validate.annotations.open_world_hint
    assert listing.annotations.read_only_hint is True
    seen = [
        t.model_dump(include={"name", "title", "description", "input_schema"})
        for t in tools.values()
    ]
    size = len(json.dumps(seen, separators=(",", ":")))
    # ~1,250 for the two tools and the first four arguments; each way of reading the data
    # (convert, columns, drop_invalid, drop_media) may cost ~100 more
    assert size < 1850, f"the model reads {size} bytes for two of the tools"


async def test_a_valid_dataset_is_recorded_in_the_draft(tmp_path: Path) -> None:
    async with connect(data_settings(tmp_path)) as client:
        draft_id = (await call(client, "create_draft", {"title": "cooking"}))["draft_id"]
        arguments = {"datasets": ["chat.jsonl"], "draft_id": draft_id, "validation_split": 0}
        result = await call(client, "validate_datasets", arguments)
        draft = await read_draft(client, draft_id)
    assert result["valid"] and result["draft_id"] == draft_id
    section = draft["datasets"]
    assert section["status"] == "valid" and section["issues"] == []
    payload = section["payload"]
    (dataset,) = payload["datasets"]
    content = (DATA / "chat.jsonl").read_bytes()
    assert dataset["format"] == "chat" and dataset["records"] == dataset["valid_records"] == 12
    assert dataset["size_bytes"] == len(content)
    assert len(dataset["sha256"]) == 64
    assert payload["split"]["train_records"] == 12
    assert payload["train_tokens"] > 0 and payload["token_stats"]["count"] == 12
    assert "preview" not in payload
    # the estimator's length buckets stay in the draft; the assistant is not shown them
    assert sum(n for _, n in payload["length_histogram"]) == 12
    assert "length_histogram" not in result


async def test_invalid_data_marks_the_step_invalid_with_issues(tmp_path: Path) -> None:
    async with connect(data_settings(tmp_path)) as client:
        draft_id = (await call(client, "create_draft", {}))["draft_id"]
        result = await call(
            client, "validate_datasets", {"datasets": ["errors.jsonl"], "draft_id": draft_id}
        )
        draft = await read_draft(client, draft_id)
    assert not result["valid"]
    section = draft["datasets"]
    assert section["status"] == "invalid"
    errors = {i["code"]: i for i in section["issues"] if i["severity"] == "error"}
    assert set(errors) == set(result["datasets"][0]["error_counts"])
    assert "line 2" in errors["invalid_json"]["message"] and errors["invalid_json"]["fix"]
    assert any(i["code"] == "blank_lines" for i in section["issues"])
    # every error has its fix; the result gives each code's once, the draft keeps them all
    (dataset,) = result["datasets"]
    assert set(dataset["fixes"]) == set(dataset["error_counts"])
    assert all("fix" not in e for e in dataset["errors"])
    recorded = section["payload"]["datasets"][0]["errors"]
    assert all(e["fix"] == dataset["fixes"][e["code"]] for e in recorded)


async def test_the_drafts_model_and_config_shape_the_check(tmp_path: Path) -> None:
    with serve_fake_hub() as (hub, url):
        add_tiny_model(hub)
        settings = load_settings(env=hub_env(tmp_path, url, **only_data_root(tmp_path)))
        async with connect(settings) as client:
            draft_id = (await call(client, "create_draft", {}))["draft_id"]
            await record_steps(
                settings,
                draft_id,
                model={"model_id": "acme/tiny-chat", "revision": None},
                config={"template": "dpo", "config": {"method": "dpo", "max_seq_length": 16}},
            )
            arguments = {"datasets": ["chat.jsonl"], "draft_id": draft_id, "validation_split": 0}
            result = await call(client, "validate_datasets", arguments)
            draft = await read_draft(client, draft_id)
    assert result["tokenizer"].startswith("acme/tiny-chat") and result["max_seq_length"] == 16
    assert [i["code"] for i in result["issues"]] == ["format_vs_method"]
    assert draft["datasets"]["status"] == "invalid"
    assert any(w["code"] == "too_long" for w in result["datasets"][0]["warnings"])


async def test_client_roots_open_their_directories(tmp_path: Path) -> None:
    offered = tmp_path / "offered"
    offered.mkdir()
    (offered / "mine.jsonl").write_bytes((DATA / "text.jsonl").read_bytes())
    settings = data_settings(tmp_path)
    async with connect(settings) as client:  # no roots capability: config roots only
        message = await error_of(client, "validate_datasets", {"datasets": ["mine.jsonl"]})
        assert "No file 'mine.jsonl' in the allowed folders" in message

    async def roots(_: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=offered.as_uri(), name="work")])

    server = build_server(settings, Secrets())
    async with Client(server, raise_exceptions=True, list_roots_callback=roots) as client:
        draft_id = (await call(client, "create_draft", {}))["draft_id"]
        arguments = {"datasets": ["mine.jsonl"], "draft_id": draft_id}
        result = await call(client, "validate_datasets", arguments)
        listing = await call(client, "list_datasets", {"source": "local", "query": "mine"})
        recorded = (await read_draft(client, draft_id))["datasets"]["payload"]["datasets"][0]
    assert result["valid"] and recorded["location"] == str(offered / "mine.jsonl")
    assert [d["ref"] for d in listing["datasets"]] == ["mine.jsonl"]
    assert str(offered) in listing["roots"]


async def test_errors_are_tool_errors_with_the_reason(tmp_path: Path) -> None:
    async with connect(data_settings(tmp_path)) as client:
        escape = await error_of(client, "validate_datasets", {"datasets": ["../fake_hub.py"]})
        split = await error_of(
            client, "validate_datasets", {"datasets": ["chat.jsonl"], "validation_split": 0.7}
        )
        missing = await error_of(
            client, "validate_datasets", {"datasets": ["chat.jsonl"], "draft_id": "nope"}
        )
    assert "outside the allowed folders" in escape
    assert "outside [0.01, 0.5]" in split
    assert "No draft 'nope'" in missing


async def test_progress_is_reported_while_reading(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    big = tmp_path / "data" / "big.jsonl"
    line = (DATA / "chat.jsonl").read_text().splitlines()[0]
    big.write_text("\n".join(line.replace("Six", f"Six ({i})") for i in range(3000)) + "\n")
    prefix = "TRAINING_PACKAGE_MCP__DATASETS__"
    settings = load_settings(
        env=isolated_env(
            tmp_path,
            **{
                f"{prefix}ROOTS": json.dumps([str(tmp_path / "data")]),
                f"{prefix}READING__CHECK_EVERY_RECORDS": "200",
                f"{prefix}READING__PROGRESS_INTERVAL_S": "0.000001",
            },
        )
    )
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with connect(settings) as client:
        await call(
            client, "validate_datasets", {"datasets": ["big.jsonl"]}, progress_callback=progress
        )
    size = big.stat().st_size
    assert len(seen) >= 10
    assert seen[-1][0] == seen[-1][1] == size
    assert "3,000 records" in (seen[-1][2] or "")


async def test_a_cancelled_call_stops_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    big = tmp_path / "data" / "big.jsonl"
    line = (DATA / "chat.jsonl").read_text().splitlines()[0]
    big.write_text("".join(line.replace("Six", f"Six ({i})") + "\n" for i in range(50_000)))
    prefix = "TRAINING_PACKAGE_MCP__DATASETS__"
    settings = load_settings(
        env=isolated_env(
            tmp_path,
            **{
                f"{prefix}ROOTS": json.dumps([str(tmp_path / "data")]),
                f"{prefix}BUNDLED_SAMPLES": "false",
                f"{prefix}READING__CHECK_EVERY_RECORDS": "500",
            },
        )
    )
    checks: list[bool] = []  # one per checkpoint the scan passed; True where it was stopped
    real_check = anyio.from_thread.check_cancelled

    def check_cancelled() -> None:
        try:
            real_check()
        except BaseException:
            checks.append(True)
            raise
        checks.append(False)

    monkeypatch.setattr(anyio.from_thread, "check_cancelled", check_cancelled)
    async with connect(settings) as client:
        async with anyio.create_task_group() as group:

            async def run() -> None:
                await client.call_tool("validate_datasets", {"datasets": ["big.jsonl"]})

            group.start_soon(run)
            with anyio.fail_after(10):  # the scan must reach its checkpoints
                while len(checks) < 3:
                    await anyio.sleep(0.01)
            group.cancel_scope.cancel()
        await anyio.sleep(0.3)
        passed = len(checks)
        await anyio.sleep(0.3)
        listing = await call(client, "list_datasets", {"source": "local"})  # still serving
    assert checks[-1] is True and len(checks) == passed  # stopped, and reads no more
    assert passed < 50_000 // 500
    assert [d["ref"] for d in listing["datasets"]] == ["big.jsonl"]


async def test_the_bundled_sample_validates(settings: Settings) -> None:
    async with connect(settings) as client:
        draft_id = (await call(client, "create_draft", {"title": "support-bot v1"}))["draft_id"]
        result = await call(
            client,
            "validate_datasets",
            {"datasets": ["support_chat.jsonl"], "draft_id": draft_id},
        )
        listing = await call(client, "list_datasets", {"query": "support_chat"})
    (dataset,) = result["datasets"]
    assert result["valid"] and dataset["format"] == "chat" and dataset["records"] == 40
    assert "location" not in dataset  # the draft keeps it
    assert len(result["preview"]) == 2 and result["preview"][0]["untrusted"] is True
    assert result["preview"][0]["turns"][0]["speaker"] == "system"
    refs = [d["ref"] for d in listing["datasets"] if d["format"] == "chat"]
    assert {"support_chat.jsonl", "samples/support_chat.jsonl"} & set(refs)


async def test_media_is_refused_until_the_user_asks_to_drop_it(tmp_path: Path) -> None:
    """LLaMA-Factory's multimodal layout: an error naming drop_media, then, when asked, a valid
    step whose draft records what was taken out (the package is built from that record)."""
    root = tmp_path / "images"
    root.mkdir()
    records = [
        {
            "conversations": [
                {"from": "human", "value": f"<image>What is in picture {i}?"},
                {"from": "gpt", "value": f"A cat, number {i}."},
            ],
            "images": [f"pictures/{i}.jpg"],
        }
        for i in range(12)
    ]
    (root / "mllm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    prefix = "TRAINING_PACKAGE_MCP__DATASETS__"
    settings = data_settings(tmp_path, **{f"{prefix}ROOTS": json.dumps([str(root)])})
    async with connect(settings) as client:
        draft_id = (await call(client, "create_draft", {}))["draft_id"]
        arguments = {"datasets": ["mllm.jsonl"], "draft_id": draft_id, "validation_split": 0}
        refused = await call(client, "validate_datasets", arguments)
        issues = (await read_draft(client, draft_id))["datasets"]["issues"]
        dropped = await call(client, "validate_datasets", {**arguments, "drop_media": True})
        draft = await read_draft(client, draft_id)
    assert not refused["valid"] and refused["datasets"][0]["error_counts"]["has_media"] == 12
    (media,) = [i for i in issues if i["code"] == "has_media"]
    assert "this data has images" in media["message"] and "drop_media: true" in media["fix"]
    assert dropped["valid"] and draft["datasets"]["status"] == "valid"
    assert "media_dropped" in [w["code"] for w in dropped["datasets"][0]["warnings"]]
    payload = draft["datasets"]["payload"]
    assert payload["drop_media"] is True
    assert payload["datasets"][0]["media_dropped"] == {"records": 12, "parts": {"image": 12}}
