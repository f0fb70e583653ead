"""The DraftStore contract, run against SQLite and against the real PostgreSQL server."""

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import psycopg
import pytest

from server.drafts import (
    DraftConflictError,
    DraftLimitError,
    DraftNotFoundError,
    DraftPackage,
    DraftStore,
    DraftUnavailableError,
    DraftValueError,
    StepName,
    StepSection,
    StepStatus,
)
from server.drafts.sqlite import SqliteDraftStore
from tests.support import (
    TEST_DATABASE_URL,
    calibration_row,
    drop_schema,
    open_postgres_store,
    postgres_store,
    unique_name,
)
from tools.training_launcher import LaunchRecord

# slow: the PostgreSQL runs need the PostgreSQL test server, which the fast suite does without
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)]


@asynccontextmanager
async def open_store(
    backend: str, tmp_path: Path, max_drafts: int = 100
) -> AsyncIterator[DraftStore]:
    if backend == "postgres":
        async with postgres_store(max_drafts) as store:
            yield store
        return
    store = SqliteDraftStore(
        tmp_path / "drafts.sqlite3", busy_timeout_s=5, max_drafts_per_owner=max_drafts
    )
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_create_get_update_list(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path) as store:
        draft = await store.create("alice", "first")
        assert draft.version == 1 and draft.next_step is StepName.MODEL
        assert await store.get(draft.id, "alice") == draft

        section = StepSection(status=StepStatus.VALID, payload={"model_id": "Qwen/Qwen2.5-0.5B"})
        saved = await store.update(draft.with_section(StepName.MODEL, section))
        assert saved.version == 2 and saved.updated_at > draft.updated_at

        reread = await store.get(draft.id, "alice")
        assert reread == saved
        assert reread.model.payload == {"model_id": "Qwen/Qwen2.5-0.5B"}
        assert reread.next_step is StepName.CONFIG

        second = await store.create("alice", "second")
        listed = await store.list("alice")
        assert [s.id for s in listed] == [second.id, draft.id]  # most recently changed first
        assert listed[1].version == 2 and listed[1].next_step is StepName.CONFIG


@pytest.mark.parametrize("backend", BACKENDS)
async def test_stale_update_is_a_conflict_and_changes_nothing(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path) as store:
        draft = await store.create("alice", "t")
        first = draft.with_section(StepName.MODEL, StepSection(status=StepStatus.VALID))
        stale = draft.with_section(StepName.MODEL, StepSection(status=StepStatus.INVALID))
        await store.update(first)
        with pytest.raises(DraftConflictError) as exc:
            await store.update(stale)
        assert "expected version 1, found 2" in str(exc.value)
        assert (await store.get(draft.id, "alice")).model.status is StepStatus.VALID


@pytest.mark.parametrize("backend", BACKENDS)
async def test_other_owners_drafts_are_not_found(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path) as store:
        draft = await store.create("alice", "private")
        with pytest.raises(DraftNotFoundError):
            await store.get(draft.id, "bob")
        assert await store.list("bob") == []
        with pytest.raises(DraftNotFoundError):
            await store.update(draft.model_copy(update={"owner": "bob"}))
        with pytest.raises(DraftNotFoundError, match="No draft 'missing' was found"):
            await store.get("missing", "alice")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_draft_limit_per_owner(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path, max_drafts=2) as store:
        await store.create("alice", "1")
        await store.create("alice", "2")
        with pytest.raises(DraftLimitError, match="already have 2 drafts"):
            await store.create("alice", "3")
        await store.create("bob", "1")  # the limit is per owner


@pytest.mark.parametrize("backend", BACKENDS)
async def test_fifty_concurrent_updates_lose_nothing(backend: str, tmp_path: Path) -> None:
    """50 tasks race read-modify-write cycles on one draft: each either wins (and its change is
    kept, built on the one before) or is told of a conflict; nothing is silently overwritten."""
    async with open_store(backend, tmp_path) as store:
        draft = await store.create("alice", "race")
        outcomes: list[str] = []

        async def writer(n: int) -> None:
            current = await store.get(draft.id, "alice")
            payload = {**current.config.payload, f"w{n}": n}
            try:
                await store.update(
                    current.with_section(StepName.CONFIG, StepSection(payload=payload))
                )
                outcomes.append(f"w{n}")
            except DraftConflictError:
                outcomes.append("conflict")

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(writer, n)

        final = await store.get(draft.id, "alice")
        winners = [o for o in outcomes if o != "conflict"]
        assert len(outcomes) == 50 and winners
        assert final.version == 1 + len(winners)
        assert sorted(final.config.payload) == sorted(winners)  # every win is in the final state


@pytest.mark.parametrize("backend", BACKENDS)
async def test_delete_is_the_owner_s_alone(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path, max_drafts=1) as store:
        draft = await store.create("alice", "short-lived")
        with pytest.raises(DraftNotFoundError):
            await store.delete(draft.id, "bob")
        await store.delete(draft.id, "alice")
        with pytest.raises(DraftNotFoundError):
            await store.get(draft.id, "alice")
        with pytest.raises(DraftNotFoundError):
            await store.delete(draft.id, "alice")
        await store.create("alice", "room again")  # the limit counts what is left


@pytest.mark.slow  # needs the PostgreSQL test server
async def test_a_value_postgres_refuses_is_not_called_an_outage() -> None:
    """A NUL in a title: PostgreSQL text cannot hold one. Retrying would not help, so the user
    is told to change the value, not that the database is down."""
    async with postgres_store() as store:
        with pytest.raises(DraftValueError, match="change the value rather than retrying"):
            await store.create("alice", "a\x00b")
        assert await store.list("alice") == []


async def test_a_failing_sqlite_database_is_not_named_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "drafts.sqlite3"
    store = SqliteDraftStore(path, busy_timeout_s=5, max_drafts_per_owner=10)
    await store.close()  # every later call fails inside SQLite
    with pytest.raises(DraftUnavailableError) as failed:
        await store.list("alice")
    assert str(tmp_path) not in str(failed.value) and "try again" in str(failed.value)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_run_is_kept_and_outlives_a_change_of_step(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path) as store:
        draft = await store.create("alice", "runs")
        started = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
        record = LaunchRecord(
            where="hub",
            target="a100-large",
            stage="running",
            started_at=started,
            job_id="68780d00bbe36d38803f645f",
            namespace="alice",
            usd_per_hour=2.5,
            estimated_hours=1.2,
            estimated_cost_usd=3.0,
            timeout_hours=2.4,
        )
        saved = await store.update(draft.launched(record))
        assert (await store.get(draft.id, "alice")).launch == record
        section = StepSection(status=StepStatus.VALID, payload={"model_id": "Qwen/Qwen2.5-0.5B"})
        changed = await store.update(saved.with_section(StepName.MODEL, section))
        assert (await store.get(changed.id, "alice")).launch == record  # it ran all the same


@pytest.mark.parametrize("backend", BACKENDS)
async def test_calibration_rows_are_each_owner_s_own_newest_first(
    backend: str, tmp_path: Path
) -> None:
    def at(hour: int) -> datetime:
        return datetime(2026, 12, 6, hour, tzinfo=UTC)

    async with open_store(backend, tmp_path) as store:
        assert await store.add_calibration("alice", calibration_row("d1", at(1), at(2), 1.0))
        assert await store.add_calibration("bob", calibration_row("d9", at(1), at(3), 9.0))
        assert await store.add_calibration("alice", calibration_row("d1", at(4), at(5), 3.0))
        rows = await store.calibration("alice", limit=10)
        assert [(r.draft_id, r.hours) for r in rows] == [("d1", 3.0), ("d1", 1.0)]
        assert rows[0].hours_ratio == 1.5 and rows[0].started_at == at(4)
        assert [r.hours for r in await store.calibration("alice", limit=1)] == [3.0]
        assert [r.draft_id for r in await store.calibration("bob", limit=10)] == ["d9"]
        assert await store.calibration("carol", limit=10) == []
        assert await store.calibration("alice", limit=0) == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_run_s_calibration_row_is_kept_once(backend: str, tmp_path: Path) -> None:
    started = datetime(2026, 12, 6, 9, tzinfo=UTC)
    first = calibration_row("d1", started, datetime(2026, 12, 6, 10, tzinfo=UTC), 1.0)
    again = calibration_row("d1", started, datetime(2026, 12, 6, 11, tzinfo=UTC), 7.0)
    async with open_store(backend, tmp_path) as store:
        assert await store.add_calibration("alice", first)
        assert not await store.add_calibration("alice", again)  # the same run: not overwritten
        assert await store.calibration("alice", limit=10) == [first]
        # another owner's row never collides with (nor hides) alice's, whatever its keys
        assert await store.add_calibration("mallory", again)
        assert await store.calibration("alice", limit=10) == [first]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_deleting_a_draft_keeps_its_runs_rows(backend: str, tmp_path: Path) -> None:
    async with open_store(backend, tmp_path) as store:
        draft = await store.create("alice", "ran once")
        started = datetime(2026, 12, 6, 9, tzinfo=UTC)
        row = calibration_row(draft.id, started, started)
        await store.add_calibration("alice", row)
        await store.delete(draft.id, "alice")
        assert await store.calibration("alice", limit=5) == [row]


async def test_an_existing_sqlite_database_gains_the_calibration_log(tmp_path: Path) -> None:
    """A database made before the calibration table (user_version 1) is migrated on open and
    keeps its drafts."""
    path = tmp_path / "drafts.sqlite3"
    store = SqliteDraftStore(path, busy_timeout_s=5, max_drafts_per_owner=10)
    draft = await store.create("alice", "older")
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE calibration")
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = SqliteDraftStore(path, busy_timeout_s=5, max_drafts_per_owner=10)
    try:
        await keeps_its_draft_and_logs_runs(store, draft)
    finally:
        await store.close()


async def keeps_its_draft_and_logs_runs(store: DraftStore, draft: DraftPackage) -> None:
    """A migrated store: the draft made before the migration, and a calibration log."""
    assert (await store.get(draft.id, "alice")).title == "older"
    started = datetime(2026, 12, 6, 9, tzinfo=UTC)
    row = calibration_row(draft.id, started, started)
    assert await store.add_calibration("alice", row)
    assert await store.calibration("alice", limit=5) == [row]


@pytest.mark.slow  # needs the PostgreSQL test server
async def test_an_existing_postgres_schema_gains_the_calibration_log() -> None:
    """A schema made before the calibration table (migration 1 applied) is migrated when a
    replica opens it, and keeps its drafts."""
    schema = unique_name("test")
    try:
        store = await open_postgres_store(schema)
        draft = await store.create("alice", "older")
        await store.close()
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {schema}.calibration")
            conn.execute(f"DELETE FROM {schema}.schema_migrations WHERE number = 2")
        store = await open_postgres_store(schema)
        try:
            await keeps_its_draft_and_logs_runs(store, draft)
        finally:
            await store.close()
    finally:
        drop_schema(schema)
