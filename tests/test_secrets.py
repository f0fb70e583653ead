"""Secrets never leave the server: not in logs, tool results, resources or error messages."""

import json
import secrets
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from server.auth import token_digest
from tests.support import (
    CLOSED_PORT_URL,
    CONSOLE_SCRIPT,
    TEST_DATABASE_URL,
    bearer_client,
    free_port,
    isolated_env,
)

pytestmark = pytest.mark.slow  # spawns the console script over HTTP, on PostgreSQL

HF_TOKEN = "hf_" + secrets.token_hex(16)
SUPABASE_KEY = "sb_secret_" + secrets.token_hex(16)
DB_PASSWORD = "pw" + secrets.token_hex(8)
BEARER = "bearer-" + secrets.token_hex(16)
SECRETS = [HF_TOKEN, SUPABASE_KEY, DB_PASSWORD, BEARER]


async def test_no_secret_reaches_a_client_or_a_log(tmp_path: Path) -> None:
    schema = f"test_{secrets.token_hex(4)}"
    database_url = TEST_DATABASE_URL.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    env = isolated_env(
        tmp_path,
        HF_TOKEN=HF_TOKEN,
        SUPABASE_URL=CLOSED_PORT_URL,
        SUPABASE_KEY=SUPABASE_KEY,
        TRAINING_PACKAGE_MCP_DATABASE_URL=database_url,
        TRAINING_PACKAGE_MCP_TOKENS=f"alice:{token_digest(BEARER)}",
        TRAINING_PACKAGE_MCP__SERVER__STORAGE__BACKEND="postgres",
        TRAINING_PACKAGE_MCP__SERVER__STORAGE__POSTGRES__SCHEMA_NAME=schema,
        TRAINING_PACKAGE_MCP__SERVER__LOGGING__LEVEL="DEBUG",
        TRAINING_PACKAGE_MCP__MODELS__HUB__RETRIES__TOTAL_TIMEOUT_S="2",
    )
    port = free_port()
    log_file = tmp_path / "server.log"
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            [CONSOLE_SCRIPT, "serve", "--http", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    seen: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # listening means the socket accepts, not that the log says so
            assert proc.poll() is None and time.monotonic() < deadline, log_file.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        async with bearer_client(url, BEARER) as client:
            listed = await client.list_tools()
            draft = await client.call_tool("create_draft", {"title": f"leak {HF_TOKEN}?"})
            draft_id = draft.structured_content["draft_id"]
            calls = [
                ("search_models", {"query": "llama"}),
                ("select_model", {"draft_id": draft_id, "model_id": "nobody/private-model"}),
                ("select_model", {"draft_id": draft_id, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"}),
                ("apply_template", {"template": "lora", "draft_id": draft_id}),
                ("list_datasets", {}),
                ("validate_datasets", {"datasets": ["supabase:support"], "draft_id": draft_id}),
                ("validate_datasets", {"datasets": ["hf:someone/data"], "draft_id": draft_id}),
                ("estimate_deployment", {"draft_id": draft_id}),
            ]
            for name, arguments in calls:
                if any(tool.name == name for tool in listed.tools):
                    result = await client.call_tool(name, arguments)
                    seen.append(result.model_dump_json())
            for uri in (f"package://drafts/{draft_id}", "package://drafts", "package://hardware"):
                seen.append((await client.read_resource(uri)).model_dump_json())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    logs = log_file.read_text()
    assert "draft.created" in logs and len(seen) >= 5
    # The title the user typed is theirs to see; the server's own copy of the token is not.
    client_side = [text.replace(f"leak {HF_TOKEN}?", "") for text in seen]
    for secret in SECRETS:
        assert secret not in logs, f"a secret reached the log: {secret[:6]}..."
        for text in client_side:
            assert secret not in text, f"a secret reached a client: {secret[:6]}..."
    assert all(json.loads(line) for line in logs.splitlines() if line.startswith("{"))
