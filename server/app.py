"""build_server: the MCPServer with every tool, resource and prompt, over one draft store."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.types import CallToolResult, InputRequiredResult, TextContent, Tool

from server import __version__, notifications
from server.drafts.notify import PostgresSubscriptionBus
from server.drafts.postgres import PostgresDraftStore
from server.http import HttpAuth
from server.logging import get_logger
from server.schemas import compact_schema
from server.settings import Secrets, Settings
from server.state import AppState, local_user, open_model_browser, open_store
from server.surface import (
    completions,
    datasets,
    deployment,
    drafts,
    models,
    package,
    prompts,
    templates,
)

INSTRUCTIONS = (
    "Builds a fine-tuning training package in four steps: model, config, datasets, deployment. "
    "Get the training_wizard prompt for the flow; start with create_draft. Every draft "
    "resource says which step comes next."
)

log = get_logger(__name__)


class WizardServer(MCPServer):
    """MCPServer whose tools/list carries compacted schemas (see server.schemas), and whose
    results' text block is compact JSON."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """The structured result's text twin without the SDK's indentation: the same JSON, about
        a third fewer bytes on the wire and tokens for a model that reads only text."""
        result = await super().call_tool(name, arguments, context)
        if (
            isinstance(result, CallToolResult)
            and result.structured_content is not None
            and len(result.content) == 1
            and isinstance(result.content[0], TextContent)
        ):
            text = orjson.dumps(result.structured_content).decode()
            result.content = [TextContent(type="text", text=text)]
        return result

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
    settings: Settings, secrets: Secrets | None = None, *, auth: HttpAuth | None = None
) -> MCPServer:
    """The server; `auth` (HTTP only) makes every request carry a verified bearer token."""
    secrets = secrets or Secrets.from_env()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[AppState]:
        store = await open_store(settings, secrets)
        log.info("server.started", version=__version__, store=type(store).__name__)
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(legacy_subscriptions.forward)
                if isinstance(bus, PostgresSubscriptionBus) and isinstance(
                    store, PostgresDraftStore
                ):
                    await background.start(bus.relay, store)
                yield AppState(
                    settings=settings,
                    secrets=secrets,
                    store=store,
                    models=open_model_browser(settings, secrets),
                    local_owner=local_user(),
                )
                background.cancel_scope.cancel()
        finally:
            await store.close()
            log.info("server.stopped")

    storage = settings.server.storage
    bus = (
        PostgresSubscriptionBus(storage.postgres.notifications)
        if storage.backend == "postgres"
        else InMemorySubscriptionBus()
    )
    mcp = WizardServer(
        settings.server.name,
        title="Training Package Wizard",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level=settings.server.logging.level,
        token_verifier=auth.verifier if auth else None,
        auth=auth.settings if auth else None,
        subscriptions=bus,
    )
    legacy_subscriptions = notifications.install(mcp, bus)
    drafts.register(mcp)
    models.register(mcp)
    prompts.register(mcp)
    templates.register(mcp)
    datasets.register(mcp)
    deployment.register(mcp)
    package.register(mcp)
    completions.register(mcp)
    return mcp
