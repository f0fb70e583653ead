"""Argument completions: draft ids, template names, model ids, hardware ids, dataset paths.

The answer depends on the argument's name, whichever prompt or resource template asks, so a
client completing `draft_id` anywhere gets the caller's drafts.
"""

from collections.abc import Awaitable, Callable
from functools import partial

import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import CompleteRequestParams, CompleteResult, Completion, ListRootsResult

from server.state import AppState, caller_from
from server.surface.datasets import dataset_sources
from tools.dataset_validator.listing import list_datasets

MAX_VALUES = 100  # the protocol's cap on values in one completion answer

Completer = Callable[[AppState, str, str], Awaitable[list[str]]]


async def _draft_ids(state: AppState, owner: str, prefix: str) -> list[str]:
    return [d.id for d in await state.store.list(owner) if d.id.startswith(prefix)]


async def _templates(state: AppState, _: str, prefix: str) -> list[str]:
    return [name for name in state.settings.templates.templates if name.startswith(prefix)]


async def _model_ids(state: AppState, _: str, prefix: str) -> list[str]:
    wanted = prefix.lower()
    return [i for i in state.models.known_model_ids() if wanted in i.lower()]


async def _hardware_ids(state: AppState, _: str, prefix: str) -> list[str]:
    deployment = state.settings.deployment
    names = ["local", *deployment.flavors, *deployment.gpus]
    return [name for name in names if name.lower().startswith(prefix.lower())]


async def _dataset_paths(state: AppState, _: str, prefix: str) -> list[str]:
    """Local dataset files in the configured roots and the bundled samples (no MCP roots: a
    completion request carries no way to ask the client for them)."""
    listing = await anyio.to_thread.run_sync(
        partial(
            list_datasets,
            state.settings.datasets,
            dataset_sources(state, ListRootsResult(roots=[])),
            None,
            "local",
        )
    )
    wanted = prefix.lower()
    return [entry.ref for entry in listing.datasets if wanted in entry.ref.lower()]


COMPLETERS: dict[str, Completer] = {
    "draft_id": _draft_ids,
    "template": _templates,
    "model_id": _model_ids,
    "hardware_id": _hardware_ids,
    "target": _hardware_ids,
    "path": _dataset_paths,
}


def register(mcp: MCPServer) -> None:
    async def complete(
        ctx: ServerRequestContext[AppState], params: CompleteRequestParams
    ) -> CompleteResult:
        completer = COMPLETERS.get(params.argument.name)
        state = ctx.lifespan_context
        values = (
            await completer(state, caller_from(state), params.argument.value) if completer else []
        )
        return CompleteResult(
            completion=Completion(
                values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES
            )
        )

    # MCPServer.completion() hands its handler no request context, and these answers depend on
    # the caller and the server's state, so the handler goes on the low-level server directly,
    # as that decorator itself does.
    mcp._lowlevel_server.add_request_handler("completion/complete", CompleteRequestParams, complete)
