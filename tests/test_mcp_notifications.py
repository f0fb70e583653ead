"""Draft changes reach subscribers; nobody can subscribe to someone else's draft."""

from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from server.drafts.sqlite import SqliteDraftStore
from server.settings import load_settings
from tests.support import connect, isolated_env


async def test_a_saved_change_notifies_the_drafts_subscriber(tmp_path: Path) -> None:
    async with connect(load_settings(env=isolated_env(tmp_path))) as client:
        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        uri = f"package://drafts/{draft_id}"
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            await client.call_tool(
                "select_model", {"draft_id": draft_id, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"}
            )
            with anyio.fail_after(10):
                event = await subscription.__anext__()
            assert event.uri == uri


async def test_subscribing_to_an_unknown_or_foreign_draft_is_refused(tmp_path: Path) -> None:
    settings = load_settings(env=isolated_env(tmp_path))
    other = SqliteDraftStore(
        settings.server.storage.sqlite.resolved_path(), busy_timeout_s=5, max_drafts_per_owner=10
    )
    bobs = await other.create("bob-not-the-local-user", "bob's draft")
    await other.close()
    async with connect(settings) as client:
        for draft_id in ("does-not-exist", bobs.id):
            with pytest.raises(MCPError, match=f"No draft '{draft_id}'"):
                async with client.listen(resource_subscriptions=[f"package://drafts/{draft_id}"]):
                    pass
