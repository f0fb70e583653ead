"""What every request handler reaches through its Context: settings, the draft store, the caller."""

import getpass
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import anyio.to_thread
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context

from server.drafts import DraftPackage, DraftStore, DraftStoreError
from server.drafts.model import owned_drafts_uri
from server.drafts.sqlite import SqliteDraftStore
from server.paths import user_data_dir
from server.places import Transport
from server.settings import Secrets, Settings
from tools import hub_http
from tools.deployment_estimator import HardwareFacts
from tools.errors import UserError

if TYPE_CHECKING:
    from tools.model_browser import ModelBrowser


class HeavyCalls:
    """How many heavy calls (reading whole datasets, writing packages) each owner has running
    in this process; one more than limits.max_heavy_calls_per_owner is refused as busy."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._running: Counter[str] = Counter()

    @asynccontextmanager
    async def hold(self, owner: str) -> AsyncIterator[None]:
        if self._running[owner] >= self._limit:
            raise UserError(
                f"Busy: you already have {self._limit} dataset validation(s) or package "
                "write(s) running (limits.max_heavy_calls_per_owner); wait for one to finish, "
                "then try again."
            )
        self._running[owner] += 1
        try:
            yield
        finally:
            self._running[owner] -= 1
            if not self._running[owner]:
                del self._running[owner]


@dataclass(frozen=True)
class AppState:
    settings: Settings
    secrets: Secrets
    store: DraftStore
    local_owner: str
    transport: Transport
    heavy: HeavyCalls
    hardware: HardwareFacts

    @cached_property
    def models(self) -> "ModelBrowser":
        """The model browser, made on first use: huggingface_hub's API client is slow to
        import, and a server should answer its first request without it."""
        return open_model_browser(self.settings, self.secrets)


async def open_store(settings: Settings, secrets: Secrets) -> DraftStore:
    """The configured draft store, migrated and ready."""
    storage, limits = settings.server.storage, settings.server.limits
    if storage.backend == "postgres":
        if secrets.database_url is None:
            raise DraftStoreError(
                "storage.backend is postgres but TRAINING_PACKAGE_MCP_DATABASE_URL is not set."
            )
        from server.drafts.postgres import PostgresDraftStore  # psycopg: only when configured

        postgres = storage.postgres
        return await PostgresDraftStore.open(
            secrets.database_url.get_secret_value(),
            schema=postgres.schema_name,
            pool_min=postgres.pool_min,
            pool_max=postgres.pool_max,
            connect_timeout_s=postgres.connect_timeout_s,
            max_drafts_per_owner=limits.max_drafts_per_owner,
        )
    return await anyio.to_thread.run_sync(
        lambda: SqliteDraftStore(
            storage.sqlite.resolved_path(),
            busy_timeout_s=storage.sqlite.busy_timeout_s,
            max_drafts_per_owner=limits.max_drafts_per_owner,
        )
    )


def open_model_browser(settings: Settings, secrets: Secrets) -> "ModelBrowser":
    from tools.model_browser import ModelBrowser

    hub_http.install(settings.models.hub)
    cache = settings.models.cache
    return ModelBrowser(
        settings.models,
        search_cache_path=cache.disk_path or user_data_dir() / "model-search-cache.json",
        token=secrets.hf_token.get_secret_value() if secrets.hf_token else None,
        hf_cache_dir=settings.models.hub.cache_dir,
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
    """Who is asking: the owner of every draft this request creates, reads or changes.

    Over HTTP with auth, the verified token's subject; otherwise (stdio, loopback HTTP without
    auth) the operating-system user running the server.
    """
    return caller_from(app_state(ctx))


def caller_from(state: AppState) -> str:
    """caller() for handlers that have the app state but no tool Context."""
    token = get_access_token()
    if token is not None:
        return token.subject or token.client_id
    return state.local_owner


def heavy_call(ctx: Context) -> AbstractAsyncContextManager[None]:
    """Hold one of the caller's heavy-call slots for the duration (busy: UserError)."""
    return app_state(ctx).heavy.hold(caller(ctx))


async def load_draft(ctx: Context, draft_id: str) -> DraftPackage:
    """The caller's draft, or DraftNotFoundError (also for another owner's draft)."""
    return await app_state(ctx).store.get(draft_id, caller(ctx))


async def announce(ctx: Context, draft: DraftPackage) -> None:
    """Tell subscribers that this draft, and so its owner's list of drafts, changed.

    The list update names the owner, so that only the owner's subscribers hear it
    (server.notifications); everyone's list has the same URI.
    """
    await ctx.notify_resource_updated(draft.uri)
    await ctx.notify_resource_updated(owned_drafts_uri(draft.owner))


def client_can_elicit(ctx: Context) -> bool:
    """The client declared form elicitation (a bare `elicitation: {}` means form)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)
