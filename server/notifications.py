"""Draft change notifications (subscriptions/listen), only ever about the caller's own drafts.

Every saved change publishes "resource updated" for the draft and for the drafts list. A listen
request naming a draft URI is honoured only for a draft the caller owns, so nobody can learn
when someone else's draft changes.
"""

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, SubscriptionsListenRequestParams, SubscriptionsListenResult

from server.drafts import DraftNotFoundError
from server.drafts.model import DRAFTS_URI
from server.state import AppState, caller_from

_DRAFT_PREFIX = DRAFTS_URI + "/"


class OwnedListenHandler(ListenHandler):
    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        state: AppState = ctx.lifespan_context
        owner = caller_from(state)
        for uri in params.notifications.resource_subscriptions or ():
            if uri.startswith(_DRAFT_PREFIX):
                try:
                    await state.store.get(uri.removeprefix(_DRAFT_PREFIX), owner)
                except DraftNotFoundError as exc:
                    raise MCPError(INVALID_PARAMS, str(exc)) from exc
        return await super().__call__(ctx, params)


def install(mcp: MCPServer, bus: InMemorySubscriptionBus) -> None:
    """Serve subscriptions/listen with the ownership check, on the bus the server publishes to."""
    # MCPServer registers a plain ListenHandler; this replaces it on the low-level server,
    # as MCPServer itself registers handlers, with the same bus (passed in at construction).
    mcp._lowlevel_server.add_request_handler(
        "subscriptions/listen", SubscriptionsListenRequestParams, OwnedListenHandler(bus)
    )
