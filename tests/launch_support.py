"""What the launch tests share: a finalized draft's settings, a server with a Hub token, and
the draft built through the real tools."""

import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client

from server.app import build_server
from server.places import Transport
from server.settings import Secrets, Settings, load_settings
from tests.support import CLOSED_PORT_URL, isolated_env
from tests.test_package_mcp import DATA, call, complete_draft

HUB = "TRAINING_PACKAGE_MCP__MODELS__HUB__"
TOKEN = "hf_alice_write"


def launch_settings(tmp_path: Path, hub_url: str = CLOSED_PORT_URL, **extra: str) -> Settings:
    """Packages and datasets under tmp_path (the same drafts database on every call), the Hub
    at `hub_url` with fast retries."""
    if not (tmp_path / "data").exists():
        shutil.copytree(DATA, tmp_path / "data")
    overrides = {
        "TRAINING_PACKAGE_MCP__DATASETS__ROOTS": json.dumps([str(tmp_path / "data")]),
        "TRAINING_PACKAGE_MCP__DATASETS__BUNDLED_SAMPLES": "false",
        f"{HUB}ENDPOINT": hub_url,
        f"{HUB}TIMEOUT_S": "2",
        f"{HUB}RETRIES__BASE_DELAY_S": "0.01",
        f"{HUB}RETRIES__MAX_DELAY_S": "0.05",
    }
    env = isolated_env(tmp_path, **{**overrides, **extra})
    return load_settings(env=env)


@asynccontextmanager
async def client_for(
    settings: Settings,
    token: str | None = TOKEN,
    transport: Transport = "stdio",
    **options: Any,
) -> AsyncIterator[Client]:
    secrets = Secrets(hf_token=token)
    server = build_server(settings, secrets, transport=transport)
    async with Client(server, raise_exceptions=True, **options) as client:
        yield client


async def finalized_draft(settings: Settings, target: str = "a100-large") -> tuple[str, Path]:
    """A draft built and finalized through the tools (on a closed Hub: the catalog's model);
    its id and package folder."""
    async with client_for(settings, token=None) as client:
        draft_id = await complete_draft(client, target=target)
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    return draft_id, Path(written["path"])


def live_group_members(pgid: int) -> list[int]:
    """The processes of group `pgid` still alive (zombies, ended and waiting for their parent,
    do not count), read from /proc (Linux: where the tests run)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if group == str(pgid) and state not in {"Z", "X"}:
            members.append(int(stat.parent.name))
    return members
