"""estimate_deployment when every option that fits is over budget: ask the user, or say so."""

from pathlib import Path

import pytest
from mcp import Client
from mcp.types import ElicitRequestParams, ElicitResult

from server.app import build_server
from server.settings import Secrets, Settings, load_settings
from tests.support import isolated_env

# slow: select_model and validate_datasets wait out the Hub's retry back-off (a closed port)
pytestmark = pytest.mark.slow

TINY_BUDGET = 0.01


async def prepared_draft(client: Client) -> str:
    draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
    steps = [
        ("select_model", {"draft_id": draft_id, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"}),
        ("apply_template", {"template": "lora", "draft_id": draft_id}),
        ("validate_datasets", {"datasets": ["support_chat.jsonl"], "draft_id": draft_id}),
    ]
    for tool, arguments in steps:
        assert not (await client.call_tool(tool, arguments)).is_error, tool
    return draft_id


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(env=isolated_env(tmp_path))


async def test_the_user_raises_the_budget_and_takes_the_cheapest(tmp_path: Path) -> None:
    asked: list[str] = []

    async def answer(_context, params: ElicitRequestParams) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"choice": "raise_budget"})

    server = build_server(settings_for(tmp_path), Secrets())
    async with Client(server, elicitation_callback=answer) as client:
        draft_id = await prepared_draft(client)
        out = await client.call_tool(
            "estimate_deployment", {"draft_id": draft_id, "budget_usd": TINY_BUDGET}
        )
    assert not out.is_error, out.content
    result = out.structured_content
    (question,) = asked
    assert "over the 0.01 USD budget" in question
    assert result["selected"] is not None and result["selected"]["within_budget"]
    # raised to exactly the cheapest cost the question stated, to the cent
    assert result["budget_usd"] == result["selected"]["cost_usd"]
    assert f"Raise the budget to {result['budget_usd']:.2f} USD and take it" in question
    assert result["budget_question"] is None


async def test_without_elicitation_the_question_comes_back_as_fields(tmp_path: Path) -> None:
    server = build_server(settings_for(tmp_path), Secrets())
    async with Client(server) as client:
        draft_id = await prepared_draft(client)
        out = await client.call_tool(
            "estimate_deployment", {"draft_id": draft_id, "budget_usd": TINY_BUDGET}
        )
    result = out.structured_content
    assert result["recommended"] is None and result["selected"] is None
    question = result["budget_question"]
    cheapest = next(o for o in result["options"] if o["fits"] and o["compatible"])
    assert question["cheapest"] == cheapest["target"]
    assert f"select {cheapest['target']}" in question["how"]
    assert f"raise budget_usd to {cheapest['cost_usd']:.2f} and" in question["how"]
    assert question["cheapest_cost_usd"] == cheapest["cost_usd"]


async def test_a_call_with_the_budget_to_spare_asks_nothing(tmp_path: Path) -> None:
    async def answer(_context, params: ElicitRequestParams) -> ElicitResult:
        raise AssertionError(f"asked {params.message!r} with the budget to spare")

    server = build_server(settings_for(tmp_path), Secrets())
    async with Client(server, elicitation_callback=answer) as client:
        draft_id = await prepared_draft(client)
        out = await client.call_tool("estimate_deployment", {"draft_id": draft_id})
        again = await client.call_tool(
            "estimate_deployment", {"draft_id": draft_id, "budget_usd": 1000}
        )
    assert not out.is_error and not again.is_error, (out.content, again.content)
    assert out.structured_content["draft_uri"] and again.structured_content["budget_usd"] == 1000
    assert out.structured_content["budget_question"] is None
