"""Helpers the tests share: an isolated environment, an in-process client, the console script."""

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mcp import Client

from server.app import build_server
from server.settings import Secrets, Settings

SQLITE_PATH_ENV = "TRAINING_PACKAGE_MCP__SERVER__STORAGE__SQLITE__PATH"
CONSOLE_SCRIPT = str(Path(sys.executable).with_name("training-package-mcp"))


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The process environment with the drafts database moved under tmp_path and no secrets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TRAINING_PACKAGE_MCP") and k not in {"HF_TOKEN", "SUPABASE_KEY"}
    }
    env[SQLITE_PATH_ENV] = str(tmp_path / "drafts.sqlite3")
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
