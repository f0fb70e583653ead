"""search_models and select_model through an in-process MCP client."""

import json
from pathlib import Path

import pytest

from server.settings import load_settings
from tests.fake_hub import FakeHub
from tests.support import connect, hub_env


async def test_search_then_select_records_the_model_in_the_draft(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    async with connect(load_settings(env=hub_env(tmp_path, url))) as client:
        found = await client.call_tool(
            "search_models", {"query": "chat", "max_params_b": 10, "min_likes": 20}
        )
        assert not found.is_error
        assert found.structured_content["source"] == "hub"
        assert [m["id"] for m in found.structured_content["models"]] == [
            "acme/chat-8b",
            "acme/chat-1b",
        ]

        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        chosen = await client.call_tool(
            "select_model", {"draft_id": draft_id, "model_id": "acme/chat-1b"}
        )
        assert not chosen.is_error
        details = chosen.structured_content
        assert details["params_b"] == 1.236 and "architecture" not in details  # in the draft
        assert details["context_length"] == 131072
        assert details["next_action"] == f'apply_template(draft_id="{draft_id}", template="lora")'
        assert details["changes"] == []  # no later step to bring up to date

        (content,) = (await client.read_resource(f"package://drafts/{draft_id}")).contents
        draft = json.loads(content.text)
        assert draft["model"]["status"] == "valid"
        assert draft["model"]["payload"]["model_id"] == "acme/chat-1b"
        assert draft["model"]["payload"]["architecture"]["num_key_value_heads"] == 8
        assert draft["next_step"] == "config"


async def test_errors_come_back_as_tool_errors(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    async with connect(load_settings(env=hub_env(tmp_path, url))) as client:
        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        missing = await client.call_tool(
            "select_model", {"draft_id": draft_id, "model_id": "acme/chat-8"}
        )
        assert missing.is_error and "Closest matches: acme/chat-8b" in missing.content[0].text
        no_draft = await client.call_tool(
            "select_model", {"draft_id": "nope", "model_id": "acme/chat-1b"}
        )
        assert no_draft.is_error and "No draft 'nope'" in no_draft.content[0].text
        bad_task = await client.call_tool("search_models", {"query": "x", "task": "fill-mask"})
        assert bad_task.is_error and "not offered here" in bad_task.content[0].text
        bad_size = await client.call_tool("search_models", {"max_params_b": -1})
        assert bad_size.is_error


@pytest.mark.slow  # waits out the Hub's retry back-off: the Hub is a closed port
async def test_offline_search_and_select_work_from_the_catalog(settings) -> None:
    async with connect(settings) as client:  # the Hub endpoint is a closed port
        popular = await client.call_tool("search_models", {})
        assert popular.structured_content["source"] == "popular"
        offline = await client.call_tool("search_models", {"query": "smollm2"})
        assert offline.structured_content["source"] == "offline"
        assert offline.structured_content["notice"].startswith("The Hub is unreachable")
        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        chosen = await client.call_tool(
            "select_model",
            {"draft_id": draft_id, "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        )
        assert chosen.structured_content["source"] == "offline"
        assert chosen.structured_content["params_b"] == 0.135
