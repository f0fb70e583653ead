"""Helpers the tests share: an isolated environment, an in-process client, the console script."""

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import psycopg
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.app import build_server
from server.auth import token_digest
from server.drafts import StepName, StepSection, StepStatus
from server.drafts.postgres import PostgresDraftStore
from server.settings import Secrets, Settings
from server.state import local_user, open_store
from tests.fake_hub import FakeHub
from tools.training_launcher import CalibrationRow

SQLITE_PATH_ENV = "TRAINING_PACKAGE_MCP__SERVER__STORAGE__SQLITE__PATH"
PACKAGE_ROOT_ENV = "TRAINING_PACKAGE_MCP__PACKAGE__OUTPUT__ROOT"
CONSOLE_SCRIPT = str(Path(sys.executable).with_name("training-package-mcp"))
CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens, connections fail


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The process environment with the drafts database and the packages moved under tmp_path
    and no secrets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRAINING_PACKAGE_MCP") and k not in {"HF_TOKEN", "SUPABASE_KEY"}
    }
    env[SQLITE_PATH_ENV] = str(tmp_path / "drafts.sqlite3")
    env[PACKAGE_ROOT_ENV] = str(tmp_path / "packages")
    # Never the user's caches, never the real Hub: the endpoint is a closed local port, so a
    # test that forgets its fake Hub fails fast instead of reaching the internet.
    env["TRAINING_PACKAGE_MCP__MODELS__CACHE__DISK_PATH"] = str(tmp_path / "search-cache.json")
    env["TRAINING_PACKAGE_MCP__MODELS__HUB__CACHE_DIR"] = str(tmp_path / "hf-cache")
    env["TRAINING_PACKAGE_MCP__MODELS__HUB__ENDPOINT"] = CLOSED_PORT_URL
    env.update(extra)
    return env


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Client]:
    """An in-process MCP client on a fresh server.

    A context manager, not an async fixture: the client's task group must be entered and left
    in the same task, which pytest-asyncio does not guarantee for fixture set-up and tear-down.
    """
    async with Client(build_server(settings, Secrets()), raise_exceptions=True) as client:
        yield client


def hub_env(tmp_path: Path, hub_url: str, **extra: str) -> dict[str, str]:
    """isolated_env pointed at a fake Hub, with fast retries and caches under tmp_path."""
    prefix = "TRAINING_PACKAGE_MCP__MODELS__"
    return isolated_env(
        tmp_path,
        **{
            f"{prefix}HUB__ENDPOINT": hub_url,
            f"{prefix}HUB__CACHE_DIR": str(tmp_path / "hf-cache"),
            f"{prefix}HUB__TIMEOUT_S": "0.5",
            f"{prefix}HUB__RETRIES__BASE_DELAY_S": "0.01",
            f"{prefix}HUB__RETRIES__MAX_DELAY_S": "0.05",
            f"{prefix}HUB__RETRIES__TOTAL_TIMEOUT_S": "5",
            f"{prefix}CACHE__DISK_PATH": str(tmp_path / "search-cache.json"),
            **extra,
        },
    )


def llama_config(layers: int = 16, hidden: int = 2048, **extra: object) -> dict[str, object]:
    return {
        "model_type": "llama",
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": True,
        **extra,
    }


def seed_models(hub: FakeHub) -> None:
    """Models whose Hub JSON has the shape the real API returns for expanded listings."""

    def add(repo_id: str, params: int | None, **info: object) -> None:
        safetensors = {"parameters": {"BF16": params}, "total": params} if params else None
        hub.add_model(
            repo_id,
            config=info.pop("config", llama_config()),
            safetensors=safetensors,
            library_name="transformers",
            **info,
        )

    add(
        "acme/chat-1b",
        1_235_814_400,
        downloads=900,
        likes=40,
        pipeline_tag="text-generation",
        cardData={"license": "apache-2.0"},
        trendingScore=5,
        createdAt="2026-03-01T00:00:00Z",
    )
    add(
        "acme/chat-8b",
        8_030_261_248,
        downloads=5000,
        likes=300,
        pipeline_tag="text-generation",
        tags=["license:llama3.1"],
        trendingScore=50,
        createdAt="2026-01-01T00:00:00Z",
        config=llama_config(layers=32, hidden=4096),
    )
    add(
        "acme/chat-70b",
        70_553_706_496,
        downloads=2000,
        likes=900,
        pipeline_tag="text-generation",
        cardData={"license": "llama3.1"},
        trendingScore=20,
        createdAt="2026-02-01T00:00:00Z",
        config=llama_config(layers=80, hidden=8192),
    )
    add(
        "acme/embedder",
        100_000_000,
        downloads=99999,
        likes=5,
        pipeline_tag="feature-extraction",
        createdAt="2025-01-01T00:00:00Z",
    )
    add(
        "other/tiny-chat",
        None,
        downloads=10,
        likes=1,
        pipeline_tag="text-generation",
        createdAt="2026-05-01T00:00:00Z",
    )
    hub.add_model(
        "acme/gated-7b",
        gated=True,
        config=llama_config(layers=32, hidden=4096),
        safetensors={"parameters": {"BF16": 7e9}, "total": 7_000_000_000},
        downloads=100,
        likes=10,
        pipeline_tag="text-generation",
    )


TEST_DATABASE_URL = os.environ.get(
    "TRAINING_PACKAGE_MCP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def unique_name(prefix: str) -> str:
    """A name no other run shares (a schema, a channel, a cluster): suites running at once on
    one database (CI and a developer, two sessions) must never meet."""
    return f"{prefix}_{secrets.token_hex(6)}"


def postgres_overrides(schema: str) -> dict[str, str]:
    """Settings for a server on `schema`, notifying on a channel of its own."""
    prefix = "TRAINING_PACKAGE_MCP__SERVER__STORAGE__"
    return {
        f"{prefix}BACKEND": "postgres",
        f"{prefix}POSTGRES__SCHEMA_NAME": schema,
        f"{prefix}POSTGRES__CONNECT_TIMEOUT_S": "3",
        f"{prefix}POSTGRES__NOTIFICATIONS__CHANNEL": f"{schema}_drafts",
    }


async def open_postgres_store(
    schema: str, max_drafts: int = 100, url: str = TEST_DATABASE_URL
) -> PostgresDraftStore:
    """A PostgresDraftStore on `schema`, as a replica opens it (several may share one)."""
    return await PostgresDraftStore.open(
        url,
        schema=schema,
        pool_min=1,
        pool_max=20,
        connect_timeout_s=10,
        max_drafts_per_owner=max_drafts,
    )


@asynccontextmanager
async def postgres_store(
    max_drafts: int = 100, url: str = TEST_DATABASE_URL
) -> AsyncIterator[PostgresDraftStore]:
    """A PostgresDraftStore in a fresh schema of the test database (or `url`), dropped
    afterwards."""
    schema = unique_name("test")
    store = await open_postgres_store(schema, max_drafts, url)
    try:
        yield store
    finally:
        await store.close()
        drop_schema(schema, url)


def calibration_row(
    draft_id: str, started_at: datetime, recorded_at: datetime, hours: float = 1.0
) -> CalibrationRow:
    """A completed run's row: estimated 2 hours and $5, it took `hours` at $2.50 an hour."""
    return CalibrationRow(
        recorded_at=recorded_at,
        draft_id=draft_id,
        started_at=started_at,
        where="hub",
        target="a100-large",
        gpu="A100-80GB",
        gpu_count=1,
        model="Qwen/Qwen2.5-0.5B-Instruct",
        method="sft",
        train_tokens=1000,
        estimated_hours=2.0,
        hours=hours,
        estimated_peak_memory_gb=10.0,
        peak_memory_gb=None,
        estimated_cost_usd=5.0,
        cost_usd=hours * 2.5,
    )


def drop_schema(schema: str, url: str = TEST_DATABASE_URL) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(env: dict[str, str], *args: str, timeout_s: float = 30) -> Iterator[str]:
    """`serve --http` as a subprocess on a free port; yields its base URL, stops it after."""
    with http_server_process(env, *args, timeout_s=timeout_s) as (url, _):
        yield url


@contextmanager
def http_server_process(
    env: dict[str, str],
    *args: str,
    timeout_s: float = 30,
    cwd: Path | None = None,
    stderr: Any = subprocess.PIPE,
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """http_server, yielding the process too (its pid, its log on `stderr`)."""
    port = free_port()
    proc = subprocess.Popen(
        [CONSOLE_SCRIPT, "serve", "--http", "--port", str(port), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                log = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"server exited early: {log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("server did not start listening") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-9876543210"}


def tokens_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """isolated_env where alice and bob sign in with their TOKENS."""
    entries = ",".join(f"{who}:{token_digest(token)}" for who, token in TOKENS.items())
    return isolated_env(tmp_path, TRAINING_PACKAGE_MCP_TOKENS=entries, **extra)


def bearer_client(url: str, token: str | None, **options: Any) -> Client:
    """An MCP client for `url`/mcp that sends `token` as a bearer token; options go to Client."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(f"{url}/mcp", http_client=http), **options)


def llama_1b_model_step(**architecture: object) -> dict[str, object]:
    """A model-step payload as select_model records it, for Llama-3.2-1B (catalog figures)."""
    return {
        "model_id": "meta-llama/Llama-3.2-1B-Instruct",
        "revision": "main",
        "params": 1_235_814_400,
        "params_b": 1.24,
        "architecture": {
            "model_type": "llama",
            "num_hidden_layers": 16,
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 64,
            "vocab_size": 128256,
            "context_length": 131072,
            "tie_word_embeddings": True,
            **architecture,
        },
        "license": "llama3.2",
        "gated": True,
        "pipeline_tag": "text-generation",
        "size_gb": 2.47,
    }


async def record_steps(
    settings: Settings, draft_id: str, **steps: StepSection | dict[str, object]
) -> None:
    """Record other steps' results in a draft, as their tools would; a dict is a valid payload."""
    store = await open_store(settings, Secrets())
    try:
        draft = await store.get(draft_id, local_user())
        for step, given in steps.items():
            section = (
                given
                if isinstance(given, StepSection)
                else StepSection(status=StepStatus.VALID, payload=given)
            )
            draft = draft.with_section(StepName(step), section)
        await store.update(draft)
    finally:
        await store.close()
