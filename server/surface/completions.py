"""Argument completions: draft ids, template names, model ids, hardware ids, dataset paths.

The answer depends on the argument's name, whichever prompt or resource template asks, so a
client completing `draft_id` anywhere gets the caller's drafts.

The answers depend on the server's state (the lifespan's AppState) too, which
`MCPServer.completion()` does not hand its handler (it gets the reference, the argument and
the completion context only). A middleware, the SDK's public hook around every request (marked
provisional in mcp 2.3), makes the state of the request being answered known to the handler
(_serving).
"""

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import partial

import anyio.to_thread
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
)

from server.sources import dataset_sources
from server.state import AppState, caller_from
from tools import dataset_validator

MAX_VALUES = 100  # the protocol's cap on values in one completion answer

Completer = Callable[[AppState, str, str], Awaitable[list[str]]]
# The state of the server answering the completion request now being served (_with_state).
_serving: ContextVar[AppState | None] = ContextVar("completion_state", default=None)


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
            dataset_validator.list_datasets,
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


async def _with_state(ctx: ServerRequestContext[AppState], call_next: CallNext) -> HandlerResult:
    """Middleware: a completion request is answered knowing its server's state (_serving)."""
    if ctx.method != "completion/complete":
        return await call_next(ctx)
    token = _serving.set(ctx.lifespan_context)
    try:
        return await call_next(ctx)
    finally:
        _serving.reset(token)


def register(mcp: MCPServer) -> None:
    mcp.middleware.append(_with_state)

    @mcp.completion()
    async def complete(
        _ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        _context: CompletionContext | None,
    ) -> Completion:
        state = _serving.get()
        completer = COMPLETERS.get(argument.name)
        if state is None or completer is None:
            return Completion(values=[])
        values = await completer(state, caller_from(state), argument.value)
        return Completion(
            values=values[:MAX_VALUES], total=len(values), has_more=len(values) > MAX_VALUES
        )
