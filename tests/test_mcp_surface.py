"""The conversation surface as an assistant meets it: compact tools, completions, lookups."""

import json
from pathlib import Path

from mcp.types import ResourceTemplateReference

from server.settings import Settings, load_settings
from tests.support import connect, isolated_env

# Issue 16: what the model reads of tools/list (each tool's name, title, description and input
# schema; the output schemas are for clients to check results) stays within 8,000 bytes.
MODEL_VISIBLE_BUDGET_BYTES = 8000


async def test_tools_list_is_compact_and_every_tool_is_described(settings: Settings) -> None:
    async with connect(settings) as client:
        listed = await client.list_tools()
        seen = [
            {
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "inputSchema": tool.input_schema,
            }
            for tool in listed.tools
        ]
        size = len(json.dumps(seen, separators=(",", ":")))
        assert size <= MODEL_VISIBLE_BUDGET_BYTES, f"the model reads {size} bytes of tools/list"
        for tool in listed.tools:
            assert tool.title and tool.description, tool.name
            assert tool.annotations is not None, tool.name
            assert tool.annotations.read_only_hint is not None, tool.name
            assert tool.output_schema, tool.name
            for name, schema in tool.input_schema.get("properties", {}).items():
                assert "description" in schema, f"{tool.name}.{name} has no description"


async def test_a_result_s_text_block_is_its_structured_content_as_compact_json(
    settings: Settings,
) -> None:
    """Clients that read only text get the same JSON, without the indentation that would cost
    a model a third more tokens (and the wire a third more bytes)."""
    async with connect(settings) as client:
        model = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 256}
        model |= {"num_attention_heads": 4, "vocab_size": 1000}
        result = await client.call_tool(
            "estimate_deployment",
            {"architecture": model, "training": {"method": "sft"}, "train_tokens": 1_000_000},
        )
        assert not result.is_error, result.content
        (block,) = result.content
        assert json.loads(block.text) == result.structured_content  # type: ignore[union-attr]
        assert "\n" not in block.text and '": ' not in block.text  # type: ignore[union-attr]


async def complete(client, uri: str, argument: str, value: str) -> list[str]:
    result = await client.complete(
        ResourceTemplateReference(type="ref/resource", uri=uri),
        {"name": argument, "value": value},
    )
    return result.completion.values


async def test_completions(tmp_path: Path) -> None:
    # datasets.roots is an empty directory, so the bundled sample is the one dataset
    (tmp_path / "data").mkdir()
    env = isolated_env(tmp_path, TRAINING_PACKAGE_MCP__DATASETS__ROOTS=f"[{tmp_path / 'data'}]")
    async with connect(load_settings(env=env)) as client:
        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        assert await complete(client, "package://drafts/{draft_id}", "draft_id", "") == [draft_id]
        assert await complete(client, "package://drafts/{draft_id}", "draft_id", "zz") == []
        templates = await complete(client, "package://templates{?template}", "template", "")
        assert set(templates) == {"lora", "qlora", "full", "dpo", "kto"}
        models = await complete(client, "package://models/{+model_id}", "model_id", "qwen")
        assert "Qwen/Qwen2.5-0.5B-Instruct" in models
        hardware = await complete(client, "package://hardware/{hardware_id}", "hardware_id", "a1")
        assert "a100-large" in hardware and "A100-80GB" in hardware
        paths = await complete(client, "package://datasets/{+path}", "path", "support")
        assert paths == ["support_chat.jsonl"]  # the bundled sample


async def test_offline_lookups_for_a_model_a_hardware_id_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    env = isolated_env(tmp_path, TRAINING_PACKAGE_MCP__DATASETS__ROOTS=f"[{tmp_path / 'data'}]")
    async with connect(load_settings(env=env)) as client:
        (model,) = (
            await client.read_resource("package://models/Qwen/Qwen2.5-0.5B-Instruct")
        ).contents
        assert json.loads(model.text)["params_b"] == 0.494
        (flavor,) = (await client.read_resource("package://hardware/a100-large")).contents
        assert json.loads(flavor.text)["usd_per_hour"] > 0
        (gpu,) = (await client.read_resource("package://hardware/RTX 4090")).contents
        assert json.loads(gpu.text)["gpu"] == "RTX-4090"
        (sample,) = (await client.read_resource("package://datasets/support_chat.jsonl")).contents
        assert json.loads(sample.text)["format"] == "chat"
