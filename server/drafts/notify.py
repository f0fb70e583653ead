"""Draft-change notifications across replicas: a SubscriptionBus over PostgreSQL LISTEN/NOTIFY.

With the shared store, a change saved through one replica must reach listeners on all of them.
Each replica publishes with pg_notify through the drafts pool and holds one connection of its own
that LISTENs on the configured channel, handing every notification (its own included, so local
delivery has one path) to its local listeners: the listen streams and resources/subscribe
forwarder of server.notifications, which admit only URIs of drafts the caller owns, and only the
caller's own drafts-list updates. A payload is just the event (a resource URI, where a list
update names its owner by a hash, never the token subject).
"""

from collections.abc import Callable
from typing import Any

import anyio
import psycopg
from anyio.abc import TaskStatus
from mcp.server.subscriptions import InMemorySubscriptionBus, ServerEvent
from mcp.shared.subscriptions import event_from_wire, event_to_notification
from psycopg import AsyncConnection, sql
from pydantic import BaseModel, Field, ValidationError

from server.drafts.postgres import PostgresDraftStore
from server.drafts.store import DraftStoreError
from server.logging import get_logger
from server.settings import NotificationsConfig

log = get_logger(__name__)


class _Payload(BaseModel):
    """An event as its wire notification's method and params, without _meta."""

    method: str
    params: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, event: ServerEvent) -> "_Payload":
        notification = event_to_notification(event, {})
        wire = notification.model_dump(exclude_none=True, exclude={"params": {"meta"}})
        return cls(method=notification.method, params=wire["params"])

    def event(self) -> ServerEvent | None:
        return event_from_wire(self.method, self.params)


class PostgresSubscriptionBus:
    """Publishes through PostgreSQL; delivers what the channel carries to this process's listeners.

    `relay` runs in the server's lifespan; it gives the bus the store it publishes through.
    """

    def __init__(self, config: NotificationsConfig):
        self._config = config
        self._local = InMemorySubscriptionBus()
        self._store: PostgresDraftStore | None = None

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        return self._local.subscribe(listener)

    async def publish(self, event: ServerEvent) -> None:
        """NOTIFY every replica, this one included; a failure is logged, never raised, since the
        change it announces is already saved."""
        if self._store is None:
            raise RuntimeError("PostgresSubscriptionBus.publish before relay started")
        try:
            await self._store.notify(self._config.channel, _Payload.of(event).model_dump_json())
        except DraftStoreError:
            log.warning("notifications.not_sent", channel=self._config.channel)

    async def relay(
        self,
        store: PostgresDraftStore,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deliver the channel's notifications to local listeners for the server's lifetime.

        Reports started once LISTEN holds, so no change saved after start-up goes unheard. A lost
        connection is made again after a wait that doubles with each failed try; each is logged.
        """
        self._store = store
        delay = self._config.reconnect_min_s
        while True:
            try:
                async with await store.listening_connection() as conn:
                    await conn.execute(
                        sql.SQL("LISTEN {}").format(sql.Identifier(self._config.channel))
                    )
                    log.info("notifications.listening", channel=self._config.channel)
                    task_status.started()
                    task_status = anyio.TASK_STATUS_IGNORED
                    delay = self._config.reconnect_min_s
                    await self._deliver(conn)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning(
                    "notifications.disconnected", error=type(exc).__name__, retry_in_s=delay
                )
            await anyio.sleep(delay)
            delay = min(2 * delay, self._config.reconnect_max_s)

    async def _deliver(self, conn: AsyncConnection) -> None:
        """Hand on each notification; every keepalive_s make sure the connection still answers,
        since a proxy or NAT may drop an idle one without a word."""
        while True:
            async for notify in conn.notifies(timeout=self._config.keepalive_s):
                try:
                    event = _Payload.model_validate_json(notify.payload).event()
                except ValidationError:
                    event = None
                if event is None:  # anyone who can reach the database can NOTIFY
                    log.warning("notifications.unreadable", channel=self._config.channel)
                    continue
                await self._local.publish(event)
            with anyio.fail_after(self._config.keepalive_s):
                await conn.execute("SELECT 1")
