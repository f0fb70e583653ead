"""Draft change notifications, only ever about the caller's own drafts.

Every saved change publishes "resource updated" for the draft and for the drafts list on the
server's subscription bus (with PostgreSQL, one that reaches every replica: server.drafts.notify).
Clients on the 2026-07-28 protocol receive it through subscriptions/listen; handshake-era clients
(resources/subscribe) through a forwarder that sends notifications/resources/updated to each
subscribed session. Either way a draft URI is honoured only for a draft the caller owns, so
nobody learns when someone else's draft changes.
"""

import weakref
from collections import defaultdict
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import (
    ListenHandler,
    ResourceUpdated,
    ServerEvent,
    SubscriptionBus,
)
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    EmptyResult,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    SubscriptionsListenResult,
    UnsubscribeRequestParams,
)

from server.drafts import DraftNotFoundError
from server.drafts.model import DRAFTS_URI
from server.logging import get_logger
from server.state import AppState, caller_from

log = get_logger(__name__)
_DRAFT_PREFIX = DRAFTS_URI + "/"
_PENDING_UPDATES = 1024  # updates queued for handshake-era sessions before new ones are dropped


async def check_owned(ctx: ServerRequestContext[Any, Any], uris: list[str]) -> None:
    """Refuse a draft URI the caller does not own; other URIs are honoured (they never fire)."""
    state: AppState = ctx.lifespan_context
    owner = caller_from(state)
    for uri in uris:
        if uri.startswith(_DRAFT_PREFIX):
            try:
                await state.store.get(uri.removeprefix(_DRAFT_PREFIX), owner)
            except DraftNotFoundError as exc:
                raise MCPError(INVALID_PARAMS, str(exc)) from exc


class OwnedListenHandler(ListenHandler):
    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: SubscriptionsListenRequestParams
    ) -> SubscriptionsListenResult:
        await check_owned(ctx, list(params.notifications.resource_subscriptions or ()))
        return await super().__call__(ctx, params)


class LegacySubscriptions:
    """resources/subscribe for handshake-era sessions, fed from the same bus.

    Subscribers are held as their connections, weakly: a request's ServerSession is a proxy
    made per request, while the connection lives as long as the client is connected.
    """

    def __init__(self, bus: SubscriptionBus):
        self._subscribers: defaultdict[str, weakref.WeakSet[Any]] = defaultdict(weakref.WeakSet)
        self._send, self._receive = anyio.create_memory_object_stream[str](_PENDING_UPDATES)
        bus.subscribe(self._on_event)

    def _on_event(self, event: ServerEvent) -> None:
        if isinstance(event, ResourceUpdated) and self._subscribers.get(event.uri):
            try:
                self._send.send_nowait(event.uri)
            except anyio.WouldBlock:
                log.warning("notifications.dropped", uri=event.uri)

    async def forward(self) -> None:
        """Send queued updates to subscribed sessions; runs for the server's lifetime."""
        async for uri in self._receive:
            for connection in list(self._subscribers.get(uri, ())):
                try:
                    await connection.send_resource_updated(uri)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._subscribers[uri].discard(connection)

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        await check_owned(ctx, [params.uri])
        self._subscribers[params.uri].add(_connection(ctx))
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        self._subscribers[params.uri].discard(_connection(ctx))
        return EmptyResult()


def _connection(ctx: ServerRequestContext[Any, Any]) -> Any:
    """The connection behind a request's session proxy (the SDK keeps no public handle)."""
    return ctx.session._connection


def install(mcp: MCPServer, bus: SubscriptionBus) -> LegacySubscriptions:
    """Serve listen and subscribe with the ownership check, on the bus the server publishes to.

    MCPServer registers a plain ListenHandler and no subscribe handler; these go on its
    low-level server, as MCPServer registers its own handlers.
    """
    legacy = LegacySubscriptions(bus)
    server = mcp._lowlevel_server
    server.add_request_handler(
        "subscriptions/listen", SubscriptionsListenRequestParams, OwnedListenHandler(bus)
    )
    server.add_request_handler("resources/subscribe", SubscribeRequestParams, legacy.subscribe)
    server.add_request_handler(
        "resources/unsubscribe", UnsubscribeRequestParams, legacy.unsubscribe
    )
    server.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_log_level)
    return legacy


async def _set_log_level(
    _ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams
) -> EmptyResult:
    """Handshake-era clients may set a level; any level holds, since this server sends no log
    notifications: it logs to stderr, and tells the user what matters in tool results."""
    log.info("client.log_level", level=params.level)
    return EmptyResult()
