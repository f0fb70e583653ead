"""build_server: the MCPServer with every tool, resource and prompt, over one draft store."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, SubscriptionBus
from mcp.types import Tool

from server import __version__, notifications
from server.logging import get_logger
from server.places import Transport, check_places, sweep_package_leftovers
from server.schemas import compact_schema
from server.settings import Secrets, Settings, StorageConfig
from server.state import AppState, HeavyCalls, local_user, open_store
from server.surface import (
    completions,
    datasets,
    deployment,
    drafts,
    launch,
    models,
    package,
    prompts,
    templates,
)
from tools.deployment_estimator import HardwareFacts

if TYPE_CHECKING:
    from server.http import HttpAuth  # its auth imports pyjwt and cryptography: HTTP only

INSTRUCTIONS = (
    "Builds a fine-tuning training package in four steps: model, config, datasets, deployment. "
    "Get the training_wizard prompt for the flow; start with create_draft. Every result's "
    "next_action names the next call; get_draft shows where a draft stands."
)

log = get_logger(__name__)


class WizardServer(MCPServer):
    """MCPServer whose tools/list carries compacted schemas (see server.schemas).

    list_tools is what the SDK's tools/list handler calls, and the SDK documents that a
    subclass's override takes effect. (Results are made compact by server.errors.tool_errors.)
    """

    async def list_tools(self) -> list[Tool]:
        return [
            tool.model_copy(
                update={
                    "input_schema": compact_schema(tool.input_schema),
                    "output_schema": compact_schema(tool.output_schema, output=True),
                }
            )
            for tool in await super().list_tools()
        ]


def build_server(
    settings: Settings,
    secrets: Secrets | None = None,
    *,
    auth: "HttpAuth | None" = None,
    transport: Transport = "stdio",
) -> MCPServer:
    """The server; `auth` (HTTP only) makes every request carry a verified bearer token.

    `transport` decides whose folders are read: over HTTP only the configured dataset roots,
    never a client's. UserError when a dataset root overlaps the package folders.
    """
    secrets = secrets or Secrets.from_env()
    check_places(settings, transport)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppState]:
        store = await open_store(settings, secrets)
        swept = await anyio.to_thread.run_sync(sweep_package_leftovers, settings)
        log.info(
            "server.started",
            version=__version__,
            store=type(store).__name__,
            transport=transport,
            swept_leftovers=swept,
        )
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(legacy_subscriptions.forward)
                if (relay := getattr(bus, "relay", None)) is not None:
                    await background.start(relay, store)  # replicas hear each other's changes
                yield AppState(
                    settings=settings,
                    secrets=secrets,
                    store=store,
                    local_owner=local_user(),
                    transport=transport,
                    heavy=HeavyCalls(settings.server.limits.max_heavy_calls_per_owner),
                    hardware=HardwareFacts(),
                )
                background.cancel_scope.cancel()
        finally:
            await store.close()
            log.info("server.stopped")

    bus = _subscription_bus(settings.server.storage)
    mcp = WizardServer(
        settings.server.name,
        title="Training Package Wizard",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level=settings.server.logging.level,
        token_verifier=auth.verifier if auth else None,
        auth=auth.settings if auth else None,
        subscriptions=notifications.OwnerScopedBus(bus),
    )
    legacy_subscriptions = notifications.install(mcp, bus)
    drafts.register(mcp)
    models.register(mcp)
    prompts.register(mcp)
    templates.register(mcp)
    datasets.register(mcp)
    deployment.register(mcp)
    package.register(mcp)
    launch.register(mcp)
    completions.register(mcp)
    return mcp


def _subscription_bus(storage: StorageConfig) -> SubscriptionBus:
    """Draft changes within one process; with PostgreSQL, across replicas through LISTEN/NOTIFY
    (psycopg is imported only then)."""
    if storage.backend != "postgres":
        return InMemorySubscriptionBus()
    from server.drafts.notify import PostgresSubscriptionBus

    return PostgresSubscriptionBus(storage.postgres.notifications)
