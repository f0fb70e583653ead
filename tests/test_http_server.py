"""`serve --http`: loopback without auth, bearer tokens with it, and the HTTP safeguards."""

import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.types import ResourceTemplateReference

from tests.support import (
    CONSOLE_SCRIPT,
    TOKENS,
    bearer_client,
    free_port,
    http_server,
    isolated_env,
    tokens_env,
)

pytestmark = pytest.mark.slow  # spawns the console script over HTTP


async def test_loopback_without_auth_answers_an_mcp_client(tmp_path: Path) -> None:
    with http_server(isolated_env(tmp_path), "--host", "127.0.0.1") as url:
        async with Client(f"{url}/mcp") as client:
            created = await client.call_tool("create_draft", {"title": "over http"})
            assert created.structured_content["uri"].startswith("package://drafts/")
        health = httpx2.get(f"{url}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"


def test_a_public_address_without_auth_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [CONSOLE_SCRIPT, "serve", "--http", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "binds only to a loopback address" in result.stderr


async def test_with_tokens_each_user_sees_only_their_own_drafts(tmp_path: Path) -> None:
    with http_server(tokens_env(tmp_path), "--host", "0.0.0.0") as url:
        async with bearer_client(url, TOKENS["alice"]) as alice:
            created = await alice.call_tool("create_draft", {"title": "alice's"})
            draft_id = created.structured_content["draft_id"]
            await alice.read_resource(f"package://drafts/{draft_id}")
        async with bearer_client(url, TOKENS["bob"]) as bob:
            listing = await bob.read_resource("package://drafts")
            assert '"count": 0' in listing.contents[0].text
            with pytest.raises(Exception, match="No draft"):
                await bob.read_resource(f"package://drafts/{draft_id}")
            update = await bob.call_tool(
                "select_model", {"draft_id": draft_id, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"}
            )
            assert update.is_error and f"No draft '{draft_id}'" in update.content[0].text
            finalize = await bob.call_tool("finalize_package", {"draft_id": draft_id})
            assert finalize.is_error and f"No draft '{draft_id}'" in finalize.content[0].text
            completion = await bob.complete(
                ResourceTemplateReference(type="ref/resource", uri="package://drafts/{draft_id}"),
                {"name": "draft_id", "value": ""},
            )
            assert completion.completion.values == []
            with pytest.raises(Exception, match="No draft"):
                async with bob.listen(resource_subscriptions=[f"package://drafts/{draft_id}"]):
                    pass
        async with bearer_client(url, TOKENS["alice"]) as alice:
            completion = await alice.complete(
                ResourceTemplateReference(type="ref/resource", uri="package://drafts/{draft_id}"),
                {"name": "draft_id", "value": ""},
            )
            assert completion.completion.values == [draft_id]


@pytest.mark.parametrize("token", [None, "not-a-known-token"])
def test_requests_without_a_valid_token_are_refused(tmp_path: Path, token: str | None) -> None:
    with http_server(tokens_env(tmp_path), "--host", "127.0.0.1") as url:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx2.post(
            f"{url}/mcp",
            headers={**headers, "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        )
        assert response.status_code == 401
        assert httpx2.get(f"{url}/healthz").status_code == 200  # health needs no token


def test_oversized_bodies_and_foreign_hosts_are_refused(tmp_path: Path) -> None:
    env = isolated_env(
        tmp_path, TRAINING_PACKAGE_MCP__SERVER__TRANSPORT__HTTP__MAX_REQUEST_BYTES="4096"
    )
    with http_server(env, "--host", "127.0.0.1") as url:
        accept = {"Accept": "application/json, text/event-stream"}
        big = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "create_draft", "arguments": {"title": "x" * 10_000}},
        }
        assert httpx2.post(f"{url}/mcp", headers=accept, json=big).status_code == 413
        rebinding = httpx2.post(
            f"{url}/mcp",
            headers={**accept, "Host": "evil.example"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
        )
        assert rebinding.status_code in (403, 421)
