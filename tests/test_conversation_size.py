"""What the assistant reads on the demo's happy path, over stdio as a client meets the server.

Every byte a tool result holds is read by the model and stays in its context for the rest of
the conversation. Issue 16's budgets: what the model sees of tools/list (each tool's name, title,
description and input schema) within 8,000 bytes, and all the results of the happy path
(create, search, select, apply, validate, estimate, select, finalize) within 10,000 characters,
without losing what the training_wizard prompt asks the assistant to relay.
"""

import json
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.support import CONSOLE_SCRIPT, isolated_env

pytestmark = pytest.mark.slow  # spawns the console script over stdio

TOOLS_SEEN_BUDGET_BYTES = 8000
HAPPY_PATH_BUDGET_CHARS = 10_000


async def test_the_happy_path_reads_little(tmp_path: Path) -> None:
    server = StdioServerParameters(
        command=CONSOLE_SCRIPT,
        args=["serve"],
        env=isolated_env(tmp_path, HF_HUB_OFFLINE="1"),
    )
    read: dict[str, int] = {}
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
        seen = [
            {
                "name": t.name,
                "title": t.title,
                "description": t.description,
                "inputSchema": t.input_schema,
            }
            for t in tools
        ]

        async def call(tool: str, arguments: dict) -> dict:
            result = await client.call_tool(tool, arguments)
            text = "".join(getattr(block, "text", "") for block in result.content)
            assert not result.is_error, text
            read[f"{len(read) + 1}. {tool}"] = len(text)
            return result.structured_content or {}

        draft_id = (await call("create_draft", {"title": "support-bot v1"}))["draft_id"]
        found = await call("search_models", {"max_params_b": 2})
        model = await call(
            "select_model", {"draft_id": draft_id, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"}
        )
        config = await call(
            "apply_template",
            {"draft_id": draft_id, "template": "lora", "overrides": {"learning_rate": 1e-4}},
        )
        data = await call(
            "validate_datasets", {"draft_id": draft_id, "datasets": ["support_chat.jsonl"]}
        )
        plan = await call("estimate_deployment", {"draft_id": draft_id, "budget_usd": 20})
        chosen = await call(
            "estimate_deployment", {"draft_id": draft_id, "select": plan["recommended"]}
        )
        package = await call("finalize_package", {"draft_id": draft_id, "accept_warnings": True})

    size = len(json.dumps(seen, separators=(",", ":")))
    assert size <= TOOLS_SEEN_BUDGET_BYTES, f"the model reads {size} bytes of tools/list"
    total = sum(read.values())
    assert total <= HAPPY_PATH_BUDGET_CHARS, f"{total} characters read: {read}"
    # what the prompt asks the assistant to relay is all still there
    assert {"id", "params_b", "license"} <= set(found["models"][0])
    assert {"params_b", "context_length", "license", "gated", "warnings"} <= set(model)
    assert {"config", "errors", "warnings"} <= set(config)
    dataset = data["datasets"][0]
    assert {"format", "records", "valid_records", "errors"} <= set(dataset)
    assert data["token_stats"]["mean"] > 0
    assert {"target", "fits", "hours", "cost_usd"} <= set(plan["options"][0])
    assert plan["recommended"] and chosen["selected"]["target"] == plan["recommended"]
    assert package["written"] and package["path"] and package["summary"]
    assert "pip install -r requirements.txt" in package["next_action"]
