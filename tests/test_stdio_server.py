"""End to end over stdio: the real console script, a real client, a restart, a clean stdout."""

import json
import subprocess
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextResourceContents

from tests.support import CONSOLE_SCRIPT, isolated_env

pytestmark = pytest.mark.slow  # spawns the console script over stdio


def stdio_server(tmp_path: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=CONSOLE_SCRIPT, args=["serve"], env=isolated_env(tmp_path, **env)
    )


async def test_a_separate_client_creates_a_draft_that_survives_a_restart(tmp_path: Path) -> None:
    async with Client(stdio_server(tmp_path)) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        assert "create_draft" in names
        created = (await client.call_tool("create_draft", {"title": "e2e"})).structured_content
        (content,) = (await client.read_resource(created["uri"])).contents
        assert isinstance(content, TextResourceContents)
        assert json.loads(content.text)["title"] == "e2e"

    async with Client(stdio_server(tmp_path)) as restarted:
        (content,) = (await restarted.read_resource(created["uri"])).contents
        assert json.loads(content.text)["id"] == created["draft_id"]


def rpc(request_id: int | None, method: str, params: dict) -> str:
    message = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return json.dumps(message) + "\n"


def test_stdout_carries_only_protocol_messages_and_logs_go_to_stderr(tmp_path: Path) -> None:
    """With DEBUG logging and a secret in the environment, stdout stays pure JSON-RPC."""
    secret = "hf_SECRETtoken1234567890"
    env = isolated_env(
        tmp_path, HF_TOKEN=secret, TRAINING_PACKAGE_MCP__SERVER__LOGGING__LEVEL="DEBUG"
    )
    proc = subprocess.Popen(
        [CONSOLE_SCRIPT, "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def ask(request_id: int, method: str, params: dict) -> dict:
        proc.stdin.write(rpc(request_id, method, params))
        proc.stdin.flush()
        response = json.loads(proc.stdout.readline())
        assert response["jsonrpc"] == "2.0" and response["id"] == request_id
        return response

    try:
        client_info = {"name": "raw", "version": "0"}
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info}
        ask(1, "initialize", init)
        proc.stdin.write(rpc(None, "notifications/initialized", {}))
        created = ask(2, "tools/call", {"name": "create_draft", "arguments": {"title": secret}})
        assert created["result"]["structuredContent"]["draft_id"]
        missing = ask(3, "resources/read", {"uri": "package://drafts/nope"})
        assert "No draft 'nope'" in missing["error"]["message"]
        proc.stdin.close()
        proc.wait(timeout=30)
        rest, stderr = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rest == "", "nothing but responses may reach stdout"

    log_lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    events = {line["event"] for line in log_lines}
    assert {"server.started", "draft.created", "server.stopped"} <= events
    assert all("level" in line and "timestamp" in line for line in log_lines)
    assert secret not in stderr
