"""The embedded default draft store: one SQLite file, WAL, one transaction per write.

Calls run in a worker thread so the event loop never waits on the disk. Several processes may
share the file: SQLite's locking serialises writers (each waits up to busy_timeout_s), and the
compare-and-set on `version` turns a lost race into a clear conflict instead of an overwrite.
"""

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

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

T = TypeVar("T")

log = get_logger(__name__)


class SqliteDraftStore:
    def __init__(self, path: Path, busy_timeout_s: float, max_drafts_per_owner: int):
        self.path = path
        self._max_drafts = max_drafts_per_owner
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise DraftStoreError(
                f"Cannot open the drafts database at {path}: {exc}. Check the path "
                "(storage.sqlite.path in server.yaml) and its permissions."
            ) from exc

    def _migrate(self) -> None:
        """Apply the migrations not yet applied; PRAGMA user_version counts the applied ones."""
        with self._transaction() as conn:
            (applied,) = conn.execute("PRAGMA user_version").fetchone()
            for number, script in migrations("sqlite")[applied:]:
                for statement in statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._conn, self._lock)

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run `fn` in a worker thread; a refused value is told apart from a database that
        cannot answer (locked, disk trouble), and neither names the file: the log does."""

        def guarded() -> T:
            try:
                return fn()
            except (sqlite3.DataError, sqlite3.IntegrityError, sqlite3.InterfaceError) as exc:
                log.warning("drafts.value_refused", error=type(exc).__name__, cause=str(exc))
                raise DraftValueError() from exc
            except sqlite3.Error as exc:
                log.warning(
                    "drafts.unavailable",
                    error=type(exc).__name__,
                    cause=str(exc),
                    path=str(self.path),
                )
                raise DraftUnavailableError() from exc

        return await anyio.to_thread.run_sync(guarded)

    async def create(self, owner: str, title: str) -> DraftPackage:
        draft = new_draft(owner, title)

        def insert() -> DraftPackage:
            with self._transaction() as conn:
                (count,) = conn.execute(
                    "SELECT count(*) FROM drafts WHERE owner = ?", (owner,)
                ).fetchone()
                if count >= self._max_drafts:
                    raise DraftLimitError(self._max_drafts)
                conn.execute(
                    f"INSERT INTO drafts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        draft.id,
                        owner,
                        title,
                        draft.version,
                        draft.created_at.isoformat(),
                        draft.updated_at.isoformat(),
                        json.dumps(sections(draft)),
                    ),
                )
            log.info("draft.created", draft_id=draft.id, owner=owner)
            return draft

        return await self._run(insert)

    async def get(self, draft_id: str, owner: str) -> DraftPackage:
        def select() -> DraftPackage:
            with self._lock:
                row = self._conn.execute(
                    f"SELECT {COLUMNS} FROM drafts WHERE id = ? AND owner = ?", (draft_id, owner)
                ).fetchone()
            if row is None:
                raise DraftNotFoundError(draft_id)
            return draft_from_row(row)

        return await self._run(select)

    async def list(self, owner: str) -> list[DraftSummary]:
        def select() -> list[DraftSummary]:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {COLUMNS} FROM drafts WHERE owner = ? ORDER BY updated_at DESC",
                    (owner,),
                ).fetchall()
            return [DraftSummary.of(draft_from_row(row)) for row in rows]

        return await self._run(select)

    async def update(self, draft: DraftPackage) -> DraftPackage:
        saved = draft.model_copy(update={"version": draft.version + 1, "updated_at": utc_now()})

        def compare_and_set() -> DraftPackage:
            with self._transaction() as conn:
                changed = conn.execute(
                    "UPDATE drafts SET title = ?, version = ?, updated_at = ?, sections = ? "
                    "WHERE id = ? AND owner = ? AND version = ?",
                    (
                        saved.title,
                        saved.version,
                        saved.updated_at.isoformat(),
                        json.dumps(sections(saved)),
                        draft.id,
                        draft.owner,
                        draft.version,
                    ),
                ).rowcount
                if changed == 0:
                    row = conn.execute(
                        "SELECT version FROM drafts WHERE id = ? AND owner = ?",
                        (draft.id, draft.owner),
                    ).fetchone()
                    if row is None:
                        raise DraftNotFoundError(draft.id)
                    raise DraftConflictError(draft.id, draft.version, row[0])
            log.info("draft.saved", draft_id=saved.id, version=saved.version)
            return saved

        return await self._run(compare_and_set)

    async def delete(self, draft_id: str, owner: str) -> None:
        def remove() -> None:
            with self._transaction() as conn:
                deleted = conn.execute(
                    "DELETE FROM drafts WHERE id = ? AND owner = ?", (draft_id, owner)
                ).rowcount
            if not deleted:
                raise DraftNotFoundError(draft_id)
            log.info("draft.deleted", draft_id=draft_id)

        await self._run(remove)

    async def add_calibration(self, owner: str, row: CalibrationRow) -> bool:
        def insert() -> bool:
            with self._transaction() as conn:
                added = conn.execute(
                    f"INSERT INTO calibration ({CALIBRATION_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (
                        owner,
                        row.draft_id,
                        row.started_at.isoformat(),
                        row.recorded_at.isoformat(),
                        row.model_dump_json(),
                    ),
                ).rowcount
            log.info("calibration.added", draft_id=row.draft_id, added=bool(added))
            return bool(added)

        return await self._run(insert)

    async def calibration(self, owner: str, limit: int) -> Sequence[CalibrationRow]:
        def select() -> Sequence[CalibrationRow]:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT row_json FROM calibration WHERE owner = ? "
                    "ORDER BY recorded_at DESC, started_at DESC LIMIT ?",
                    (owner, max(limit, 0)),
                ).fetchall()
            return [calibration_from_row(row_json) for (row_json,) in rows]

        return await self._run(select)

    async def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error), holding the in-process lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock):
        self._conn, self._lock = conn, lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
