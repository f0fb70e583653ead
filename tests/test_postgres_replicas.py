"""PostgreSQL drafts as replicas see them: shared between processes, surviving a DB restart."""

import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import anyio
import psycopg
import pytest

from server.drafts import DraftStoreError, StepName, StepSection, StepStatus
from tests.support import (
    CONSOLE_SCRIPT,
    TEST_DATABASE_URL,
    bearer_client,
    http_server,
    isolated_env,
    postgres_store,
)


def postgres_env(tmp_path: Path, schema: str, url: str | None = TEST_DATABASE_URL) -> dict:
    env = isolated_env(
        tmp_path,
        TRAINING_PACKAGE_MCP__SERVER__STORAGE__BACKEND="postgres",
        TRAINING_PACKAGE_MCP__SERVER__STORAGE__POSTGRES__SCHEMA_NAME=schema,
        TRAINING_PACKAGE_MCP__SERVER__STORAGE__POSTGRES__CONNECT_TIMEOUT_S="3",
    )
    if url:
        env["TRAINING_PACKAGE_MCP_DATABASE_URL"] = url
    return env


async def test_two_server_processes_share_drafts(tmp_path: Path) -> None:
    schema = f"test_{secrets.token_hex(4)}"
    env = postgres_env(tmp_path, schema)
    try:
        with http_server(env, "--host", "127.0.0.1") as first, http_server(env) as second:
            async with bearer_client(first, None) as a:
                created = await a.call_tool("create_draft", {"title": "shared"})
                draft_id = created.structured_content["draft_id"]
            async with bearer_client(second, None) as b:
                (content,) = (await b.read_resource(f"package://drafts/{draft_id}")).contents
                assert json.loads(content.text)["title"] == "shared"
                listing = json.loads((await b.read_resource("package://drafts")).contents[0].text)
                assert [d["id"] for d in listing["drafts"]] == [draft_id]
    finally:
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "TRAINING_PACKAGE_MCP_DATABASE_URL is not set"),
        ("postgresql://postgres:pw@127.0.0.1:9/test", "Cannot reach the drafts database"),
    ],
    ids=["no-url", "unreachable"],
)
def test_database_problems_at_start_up_are_clear(
    tmp_path: Path, url: str | None, message: str
) -> None:
    result = subprocess.run(
        [CONSOLE_SCRIPT, "serve"],
        env=postgres_env(tmp_path, "unused", url),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr  # the URL's password is never printed


@pytest.mark.skipif(shutil.which("pg_ctlcluster") is None, reason="needs Debian's pg_ctlcluster")
async def test_the_store_reconnects_after_a_database_restart() -> None:
    async with postgres_store() as store:
        draft = await store.create("alice", "survives")
        version = next(Path("/etc/postgresql").iterdir()).name
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        deadline = time.monotonic() + 30
        while True:  # the server may take a moment to accept connections again
            try:
                reread = await store.get(draft.id, "alice")
                break
            except DraftStoreError:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.5)
        assert reread.title == "survives"
        saved = await store.update(
            reread.with_section(StepName.MODEL, StepSection(status=StepStatus.VALID))
        )
        assert saved.version == 2
