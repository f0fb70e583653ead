"""Draft change notifications, only ever about the caller's own drafts.

Every saved change publishes "resource updated" for the draft and for the drafts list on the
server's subscription bus (with PostgreSQL, one that reaches every replica: server.drafts.notify).
Clients on the 2026-07-28 protocol receive it through subscriptions/listen; handshake-era clients
(resources/subscribe) through a forwarder that sends notifications/resources/updated to each
subscribed session. Either way a draft URI is honoured only for a draft the caller owns, and the
drafts list's update is published per owner (owned_drafts_uri) and delivered, as the plain list
URI, to that owner's subscribers alone, so nobody learns when someone else's draft changes.

The listen side uses the SDK's public seams: the bus the server is built with
(`MCPServer(subscriptions=OwnerScopedBus(bus))`) and a middleware that checks ownership before
the SDK's own listen handler runs (the gate the SDK's subscriptions guide shows; middleware is
marked provisional in mcp 2.3). Two
things have no public API in mcp 2.3, and the SDK's migration guide names the same private
workarounds for both (see `install` and `_connection`).
"""

import weakref
from collections import defaultdict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import anyio
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import ResourceUpdated, ServerEvent, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    EmptyResult,
    SetLevelRequestParams,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    UnsubscribeRequestParams,
)
from pydantic import ValidationError

from server.drafts import DraftNotFoundError
from server.drafts.model import DRAFTS_URI, is_owned_drafts_uri, owned_drafts_uri
from server.logging import get_logger
from server.state import AppState, caller_from

log = get_logger(__name__)
_DRAFT_PREFIX = DRAFTS_URI + "/"
_PENDING_UPDATES = 1024  # updates queued for handshake-era sessions before new ones are dropped
# Who the listen stream now subscribing is for: owned_listen sets it around the SDK's listen
# handler, whose bus.subscribe runs in that request's task (see OwnerScopedBus).
_listening_owner: ContextVar[str | None] = ContextVar("listening_owner", default=None)


async def check_owned(ctx: ServerRequestContext[Any, Any], uris: list[str]) -> str:
    """Refuse a draft URI the caller does not own, and the bus's owner-scoped list URIs; other
    URIs are honoured (they never fire). Returns the caller."""
    state: AppState = ctx.lifespan_context
    owner = caller_from(state)
    for uri in uris:
        if is_owned_drafts_uri(uri):
            raise MCPError(INVALID_PARAMS, f"Subscribe to {DRAFTS_URI} to hear of your drafts.")
        if uri.startswith(_DRAFT_PREFIX):
            try:
                await state.store.get(uri.removeprefix(_DRAFT_PREFIX), owner)
            except DraftNotFoundError as exc:
                raise MCPError(INVALID_PARAMS, str(exc)) from exc
    return owner


def _as_seen_by(owner: str | None) -> Callable[[ServerEvent], ServerEvent | None]:
    """How `owner`'s subscribers see an event: their own drafts-list update as DRAFTS_URI,
    anyone else's not at all (None); every other event as it is."""
    mine = owned_drafts_uri(owner) if owner is not None else None

    def see(event: ServerEvent) -> ServerEvent | None:
        if not (isinstance(event, ResourceUpdated) and is_owned_drafts_uri(event.uri)):
            return event
        return ResourceUpdated(uri=DRAFTS_URI) if event.uri == mine else None

    return see


class OwnerScopedBus:
    """The bus as each listen stream may see it (_as_seen_by the stream's owner); the server's
    subscriptions bus, so the SDK's listen handler subscribes through it.

    A listener subscribed outside owned_listen has no owner and hears no list updates.
    """

    def __init__(self, bus: SubscriptionBus):
        self._bus = bus

    async def publish(self, event: ServerEvent) -> None:
        """As it is: publishers already name the owner (owned_drafts_uri)."""
        await self._bus.publish(event)

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        see = _as_seen_by(_listening_owner.get())

        def deliver(event: ServerEvent) -> None:
            seen = see(event)
            if seen is not None:
                listener(seen)

        return self._bus.subscribe(deliver)


async def owned_listen(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Middleware: subscriptions/listen for the caller's own drafts only, its stream scoped to
    the caller (_listening_owner). Other requests pass untouched."""
    if ctx.method != "subscriptions/listen":
        return await call_next(ctx)
    try:
        params = SubscriptionsListenRequestParams.model_validate(ctx.params or {}, by_name=False)
    except ValidationError:
        return await call_next(ctx)  # the SDK answers malformed params itself
    owner = await check_owned(ctx, list(params.notifications.resource_subscriptions or ()))
    token = _listening_owner.set(owner)
    try:
        return await call_next(ctx)
    finally:
        _listening_owner.reset(token)


class LegacySubscriptions:
    """resources/subscribe for handshake-era sessions, fed from the same bus.

    Subscribers are held as their connections, weakly: a request's ServerSession is a proxy
    made per request, while the connection lives as long as the client is connected. They are
    keyed by the URI the bus publishes, so a drafts-list subscriber is keyed by its owner's
    owned_drafts_uri and hears only its own list's changes.
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
            subscribed_uri = DRAFTS_URI if is_owned_drafts_uri(uri) else uri
            for connection in list(self._subscribers.get(uri, ())):
                try:
                    await connection.send_resource_updated(subscribed_uri)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._subscribers[uri].discard(connection)

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams
    ) -> EmptyResult:
        owner = await check_owned(ctx, [params.uri])
        self._subscribers[_bus_uri(params.uri, owner)].add(_connection(ctx))
        return EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams
    ) -> EmptyResult:
        owner = caller_from(ctx.lifespan_context)
        self._subscribers[_bus_uri(params.uri, owner)].discard(_connection(ctx))
        return EmptyResult()


def _bus_uri(uri: str, owner: str) -> str:
    """The URI the bus announces changes to `uri` under, for `owner`."""
    return owned_drafts_uri(owner) if uri == DRAFTS_URI else uri


def _connection(ctx: ServerRequestContext[Any, Any]) -> Any:
    """The connection behind a request's session proxy: private, and unavoidable in mcp 2.3.

    A handshake-era subscriber is told of changes after its request is over, so it must be held
    as something that lives as long as its connection and can send on it. The only such object
    is the Connection, and the SDK's migration guide says it "is not currently reachable from
    ctx". Its public stand-ins do not do: the per-request ServerSession proxy holds the
    connection strongly, and since Connection.notify never raises on a closed stream, a
    departed client's proxy could never be told from a live one and would stay for good (the
    guide's other key, the Mcp-Session-Id header, has the same problem, and stdio has none).
    Held weakly (LegacySubscriptions), the connection leaves with its client.
    """
    return ctx.session._connection


def install(mcp: MCPServer, bus: SubscriptionBus) -> LegacySubscriptions:
    """Gate listen (a middleware, on the public `mcp.middleware` list), and serve the
    handshake-era resources/subscribe, resources/unsubscribe and logging/setLevel. `mcp` was
    built with `subscriptions=OwnerScopedBus(bus)` (MCPServer does not expose its bus).

    Those three are spec methods that MCPServer has no public way to serve (an extension may
    not bind a spec method), and the SDK advertises a capability only for a method with a
    registered handler, so a middleware cannot stand in. They go on MCPServer's private
    low-level server, with add_request_handler, which is the workaround the SDK's migration
    guide gives ("A public way to register these handlers on MCPServer is planned").
    """
    legacy = LegacySubscriptions(bus)
    mcp.middleware.append(owned_listen)
    server = mcp._lowlevel_server
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
