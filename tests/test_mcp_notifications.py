"""Draft changes reach subscribers; nobody can subscribe to someone else's draft, nor hear when
someone else's drafts list changes."""

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import ResourceUpdatedNotification

from server.app import build_server
from server.drafts.model import DRAFTS_URI, owned_drafts_uri
from server.drafts.sqlite import SqliteDraftStore
from server.settings import Secrets, load_settings
from tests.support import (
    TEST_DATABASE_URL,
    TOKENS,
    bearer_client,
    connect,
    drop_schema,
    http_server,
    isolated_env,
    postgres_overrides,
    tokens_env,
)

QUIET_S = 1.0  # how long a listener that must hear nothing is watched, after the owner heard it


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


def recorder(heard: list[str]) -> Callable[[object], Awaitable[None]]:
    """A message handler that records the URI of every resources/updated notification."""

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            heard.append(str(message.params.uri))

    return on_message


async def wait_for(uri: str, heard: list[str]) -> None:
    """Until `uri` is among the recorded updates (30 s at most)."""
    with anyio.fail_after(30):
        while uri not in heard:
            await anyio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_drafts_list_change_reaches_only_its_owners_listeners(
    tmp_path: Path, backend: str
) -> None:
    schema = f"test_{secrets.token_hex(4)}"
    env = tokens_env(
        tmp_path,
        # stateful, so that handshake-era sessions have a stream for their notifications
        TRAINING_PACKAGE_MCP__SERVER__TRANSPORT__HTTP__STATELESS="false",
        **(
            {**postgres_overrides(schema), "TRAINING_PACKAGE_MCP_DATABASE_URL": TEST_DATABASE_URL}
            if backend == "postgres"
            else {}
        ),
    )
    legacy_heard: dict[str, list[str]] = {"alice": [], "bob": []}
    try:
        with http_server(env) as url:
            async with (
                bearer_client(url, TOKENS["alice"]) as alice,
                bearer_client(url, TOKENS["bob"]) as bob,
                bearer_client(
                    url,
                    TOKENS["alice"],
                    mode="legacy",
                    message_handler=recorder(legacy_heard["alice"]),
                ) as alice_legacy,
                bearer_client(
                    url, TOKENS["bob"], mode="legacy", message_handler=recorder(legacy_heard["bob"])
                ) as bob_legacy,
            ):
                await alice_legacy.session.subscribe_resource(DRAFTS_URI)
                await bob_legacy.session.subscribe_resource(DRAFTS_URI)
                async with (
                    alice.listen(resource_subscriptions=[DRAFTS_URI]) as alices,
                    bob.listen(resource_subscriptions=[DRAFTS_URI]) as bobs,
                ):
                    await alice.call_tool("create_draft", {"title": "alice's"})
                    with anyio.fail_after(30):
                        assert (await alices.__anext__()).uri == DRAFTS_URI
                    await wait_for(DRAFTS_URI, legacy_heard["alice"])
                    leaked = None
                    with anyio.move_on_after(QUIET_S):
                        leaked = await bobs.__anext__()
                    assert (leaked, legacy_heard["bob"]) == (None, [])
                    # bob's own change does reach him: his listeners were live all along
                    await bob.call_tool("create_draft", {"title": "bob's"})
                    with anyio.fail_after(30):
                        assert (await bobs.__anext__()).uri == DRAFTS_URI
                    await wait_for(DRAFTS_URI, legacy_heard["bob"])
    finally:
        if backend == "postgres":
            drop_schema(schema)


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_the_owner_scoped_list_uri_cannot_be_subscribed_to(tmp_path: Path) -> None:
    foreign = owned_drafts_uri("bob-not-the-local-user")
    settings = load_settings(env=isolated_env(tmp_path))
    async with connect(settings) as client:
        with pytest.raises(MCPError, match=f"Subscribe to {DRAFTS_URI}"):
            async with client.listen(resource_subscriptions=[foreign]):
                pass
    async with Client(build_server(settings, Secrets()), mode="legacy") as client:
        with pytest.raises(MCPError, match=f"Subscribe to {DRAFTS_URI}"):
            await client.session.subscribe_resource(foreign)
