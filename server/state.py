"""What every request handler reaches through its Context: settings, the draft store, the caller."""

import getpass
import os
from dataclasses import dataclass

from mcp.server.mcpserver import Context

from server.drafts import DraftStore
from server.drafts.sqlite import SqliteDraftStore
from server.settings import Secrets, Settings


@dataclass(frozen=True)
class AppState:
    settings: Settings
    secrets: Secrets
    store: DraftStore
    local_owner: str


def open_store(settings: Settings) -> DraftStore:
    sqlite = settings.server.storage.sqlite
    return SqliteDraftStore(
        sqlite.resolved_path(),
        busy_timeout_s=sqlite.busy_timeout_s,
        max_drafts_per_owner=settings.server.limits.max_drafts_per_owner,
    )


def local_user() -> str:
    """The owner of drafts made over stdio: the operating-system user running the server."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, as in some containers
        return os.environ.get("USER") or "local"


def app_state(ctx: Context) -> AppState:
    return ctx.request_context.lifespan_context


def caller(ctx: Context) -> str:
    """Who is asking: the owner of every draft this request creates, reads or changes."""
    return app_state(ctx).local_owner
