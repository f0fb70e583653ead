"""create_draft and the draft resources, through an in-process MCP client."""

import json

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

from server.settings import Settings
from tests.support import connect


async def read_json(client: Client, uri: str) -> dict:
    (content,) = (await client.read_resource(uri)).contents
    assert isinstance(content, TextResourceContents)
    assert content.mime_type == "application/json"
    return json.loads(content.text)


async def test_tools_and_resources_are_listed(settings: Settings) -> None:
    async with connect(settings) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        create = tools["create_draft"]
        assert create.output_schema
        assert {"draft_id", "uri"} <= set(create.output_schema["properties"])
        assert create.annotations and create.annotations.read_only_hint is False
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        assert {"package://drafts/{draft_id}", "package://drafts{?limit}"} <= templates


async def test_create_draft_then_read_it(settings: Settings) -> None:
    async with connect(settings) as client:
        result = await client.call_tool("create_draft", {"title": "  support-bot v1  "})
        assert not result.is_error
        created = result.structured_content
        assert created["uri"] == f"package://drafts/{created['draft_id']}"
        assert created["title"] == "support-bot v1"
        assert created["next_step"] == "model"

        draft = await read_json(client, created["uri"])
        assert draft["id"] == created["draft_id"]
        assert draft["version"] == 1
        assert draft["next_step"] == "model"
        assert "search_models" in draft["next_action"]
        for step in ("model", "config", "datasets", "deployment"):
            assert draft[step] == {
                "status": "empty",
                "payload": {},
                "issues": [],
                "reason": None,
                "updated_at": None,
            }


async def test_untitled_draft_gets_a_dated_title(settings: Settings) -> None:
    async with connect(settings) as client:
        created = (await client.call_tool("create_draft", {})).structured_content
        assert created["title"].startswith("Draft 20")


async def test_drafts_resource_lists_the_callers_drafts_newest_first(settings: Settings) -> None:
    async with connect(settings) as client:
        ids = [
            (await client.call_tool("create_draft", {"title": f"d{i}"})).structured_content[
                "draft_id"
            ]
            for i in range(3)
        ]
        listing = await read_json(client, "package://drafts")
        assert listing["count"] == 3
        assert [d["id"] for d in listing["drafts"]] == ids[::-1]
        assert listing["drafts"][0]["uri"] == f"package://drafts/{ids[-1]}"
        limited = await read_json(client, "package://drafts?limit=1")
        assert limited["shown"] == 1 and limited["count"] == 3


async def test_unknown_draft_is_a_clear_not_found(settings: Settings) -> None:
    async with connect(settings) as client:
        with pytest.raises(MCPError) as exc:
            await client.read_resource("package://drafts/doesnotexist")
        assert "No draft 'doesnotexist' was found" in str(exc.value)
        assert "create_draft" in str(exc.value)


async def test_overlong_title_is_a_tool_error_not_a_crash(settings: Settings) -> None:
    async with connect(settings) as client:
        result = await client.call_tool("create_draft", {"title": "x" * 500})
        assert result.is_error
        assert "keep it to 200" in result.content[0].text
