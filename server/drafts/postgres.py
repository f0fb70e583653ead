"""The scale-out draft store: PostgreSQL (a Supabase project's database works), async pool.

Several server replicas share it. Writes are single statements or short transactions;
compare-and-set on `version` makes concurrent edits conflict instead of overwrite. Connections are
checked when taken from the pool, so after a database restart the next request reconnects.
Replicas also tell each other about saved changes through it (server.drafts.notify).
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from server.drafts.model import DraftPackage, DraftSummary, utc_now
from server.drafts.rows import (
    CALIBRATION_COLUMNS,
    COLUMNS,
    calibration_from_row,
    draft_from_row,
    migrations,
    new_draft,
    sections,
    statements,
)
from server.drafts.store import (
    DraftConflictError,
    DraftLimitError,
    DraftNotFoundError,
    DraftStoreError,
    DraftUnavailableError,
    DraftValueError,
)
from server.logging import get_logger
from tools.training_launcher import CalibrationRow

log = get_logger(__name__)

# Serialises schema migrations across replicas starting together (pg_advisory_xact_lock key).
_MIGRATION_LOCK = 0x7470_6D63  # "tpmc"


class PostgresDraftStore:
    def __init__(
        self,
        url: str,
        connect_kwargs: dict[str, Any],
        pool: AsyncConnectionPool,
        schema: str,
        max_drafts_per_owner: int,
    ):
        self._url = url
        self._connect_kwargs = connect_kwargs
        self._pool = pool
        self._schema = schema
        self._max_drafts = max_drafts_per_owner
        self._table = sql.Identifier(schema, "drafts")
        self._calibration = sql.Identifier(schema, "calibration")

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        schema: str,
        pool_min: int,
        pool_max: int,
        connect_timeout_s: float,
        max_drafts_per_owner: int,
    ) -> "PostgresDraftStore":
        connect_kwargs = {"connect_timeout": max(1, int(connect_timeout_s)), "autocommit": True}
        pool = AsyncConnectionPool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            timeout=connect_timeout_s,
            kwargs=connect_kwargs,
            check=AsyncConnectionPool.check_connection,
            open=False,
            name="drafts",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout_s)
            store = cls(url, connect_kwargs, pool, schema, max_drafts_per_owner)
            await store._migrate()
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise DraftStoreError(
                "Cannot reach the drafts database (TRAINING_PACKAGE_MCP_DATABASE_URL): "
                f"{type(exc).__name__}. Check that PostgreSQL is running and the URL is right."
            ) from exc
        return store

    async def _migrate(self) -> None:
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
            )
            await conn.execute(
                sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(self._schema))
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(number INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute("SELECT coalesce(max(number), 0) FROM schema_migrations")
            (applied,) = await cursor.fetchone()
            for number, script in migrations("postgres")[applied:]:
                for statement in statements(script):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_migrations (number) VALUES (%s)", (number,))
                log.info("drafts.migrated", backend="postgres", migration=number)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection; database failures become a DraftStoreError the user can read:
        a refused value (fix the value) apart from an outage (try again); the log keeps the
        real cause."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.DataError as exc:
            log.warning("drafts.value_refused", **_cause(exc))
            raise DraftValueError() from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            log.warning("drafts.unavailable", **_cause(exc))
            raise DraftUnavailableError() from exc
        except psycopg.Error as exc:
            log.error("drafts.database_error", **_cause(exc))
            raise DraftStoreError(
                f"The drafts database failed on this request (SQLSTATE {exc.sqlstate}); the "
                "server's log has the cause. Tell the server's operator if it persists."
            ) from exc

    async def create(self, owner: str, title: str) -> DraftPackage:
        draft = new_draft(owner, title)
        async with self._connection() as conn, conn.transaction():
            # one creator per owner at a time, so the limit holds across replicas
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (owner,))
            cursor = await conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE owner = %s").format(self._table), (owner,)
            )
            (count,) = await cursor.fetchone()
            if count >= self._max_drafts:
                raise DraftLimitError(self._max_drafts)
            await conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s, %s, %s, %s, %s, %s)").format(
                    self._table, sql.SQL(COLUMNS)
                ),
                (
                    draft.id,
                    owner,
                    title,
                    draft.version,
                    draft.created_at,
                    draft.updated_at,
                    Jsonb(sections(draft)),
                ),
            )
        log.info("draft.created", draft_id=draft.id, owner=owner)
        return draft

    async def get(self, draft_id: str, owner: str) -> DraftPackage:
        async with self._connection() as conn:
            cursor = await conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE id = %s AND owner = %s").format(
                    sql.SQL(COLUMNS), self._table
                ),
                (draft_id, owner),
            )
            row = await cursor.fetchone()
        if row is None:
            raise DraftNotFoundError(draft_id)
        return draft_from_row(row)

    async def list(self, owner: str) -> list[DraftSummary]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE owner = %s ORDER BY updated_at DESC").format(
                    sql.SQL(COLUMNS), self._table
                ),
                (owner,),
            )
            rows = await cursor.fetchall()
        return [DraftSummary.of(draft_from_row(row)) for row in rows]

    async def update(self, draft: DraftPackage) -> DraftPackage:
        saved = draft.model_copy(update={"version": draft.version + 1, "updated_at": utc_now()})
        async with self._connection() as conn:
            cursor = await conn.execute(
                sql.SQL(
                    "UPDATE {} SET title = %s, version = %s, updated_at = %s, sections = %s "
                    "WHERE id = %s AND owner = %s AND version = %s"
                ).format(self._table),
                (
                    saved.title,
                    saved.version,
                    saved.updated_at,
                    Jsonb(sections(saved)),
                    draft.id,
                    draft.owner,
                    draft.version,
                ),
            )
            if cursor.rowcount == 0:
                cursor = await conn.execute(
                    sql.SQL("SELECT version FROM {} WHERE id = %s AND owner = %s").format(
                        self._table
                    ),
                    (draft.id, draft.owner),
                )
                row = await cursor.fetchone()
                if row is None:
                    raise DraftNotFoundError(draft.id)
                raise DraftConflictError(draft.id, draft.version, row[0])
        log.info("draft.saved", draft_id=saved.id, version=saved.version)
        return saved

    async def delete(self, draft_id: str, owner: str) -> None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                sql.SQL("DELETE FROM {} WHERE id = %s AND owner = %s").format(self._table),
                (draft_id, owner),
            )
            if cursor.rowcount == 0:
                raise DraftNotFoundError(draft_id)
        log.info("draft.deleted", draft_id=draft_id)

    async def add_calibration(self, owner: str, row: CalibrationRow) -> bool:
        async with self._connection() as conn:
            cursor = await conn.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                ).format(self._calibration, sql.SQL(CALIBRATION_COLUMNS)),
                (
                    owner,
                    row.draft_id,
                    row.started_at,
                    row.recorded_at,
                    Jsonb(row.model_dump(mode="json")),
                ),
            )
            added = cursor.rowcount == 1
        log.info("calibration.added", draft_id=row.draft_id, added=added)
        return added

    async def calibration(self, owner: str, limit: int) -> Sequence[CalibrationRow]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                sql.SQL(
                    "SELECT row_json FROM {} WHERE owner = %s "
                    "ORDER BY recorded_at DESC, started_at DESC LIMIT %s"
                ).format(self._calibration),
                (owner, max(limit, 0)),
            )
            rows = await cursor.fetchall()
        return [calibration_from_row(row_json) for (row_json,) in rows]

    async def notify(self, channel: str, payload: str) -> None:
        """NOTIFY every connection listening on `channel`, through the pool."""
        async with self._connection() as conn:
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    async def listening_connection(self) -> AsyncConnection:
        """A connection outside the pool, as the pool's are made: LISTEN holds it for good."""
        return await AsyncConnection.connect(self._url, **self._connect_kwargs)

    async def close(self) -> None:
        await self._pool.close()


def _cause(exc: Exception) -> dict[str, str | None]:
    """What the log keeps of a database failure."""
    sqlstate = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    return {"error": type(exc).__name__, "sqlstate": sqlstate, "cause": str(exc)}
