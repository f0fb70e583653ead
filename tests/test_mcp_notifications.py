"""Draft changes reach subscribers; nobody can subscribe to someone else's draft."""

from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceUpdatedNotification

from server.app import build_server
from server.drafts.sqlite import SqliteDraftStore
from server.settings import Secrets, load_settings
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


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_handshake_era_clients_get_resources_updated(tmp_path: Path) -> None:
    updated: list[str] = []

    async def on_message(message) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    settings = load_settings(env=isolated_env(tmp_path))
    server = build_server(settings, Secrets())
    async with Client(server, mode="legacy", message_handler=on_message) as client:
        draft_id = (await client.call_tool("create_draft", {})).structured_content["draft_id"]
        uri = f"package://drafts/{draft_id}"
        await client.session.subscribe_resource(uri)
        with pytest.raises(MCPError, match="No draft 'nope'"):
            await client.session.subscribe_resource("package://drafts/nope")
        await client.call_tool(
            "select_model", {"draft_id": draft_id, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"}
        )
        with anyio.fail_after(10):
            while uri not in updated:
                await anyio.sleep(0.05)
