"""The SQLite draft store: CRUD, ownership, compare-and-set, concurrent writers, restarts."""

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from server.drafts import (
    DraftConflictError,
    DraftLimitError,
    DraftNotFoundError,
    DraftStoreError,
    StepName,
    StepSection,
    StepStatus,
)
from server.drafts.sqlite import SqliteDraftStore


def open_store(path: Path, max_drafts: int = 100) -> SqliteDraftStore:
    return SqliteDraftStore(path, busy_timeout_s=5, max_drafts_per_owner=max_drafts)


@pytest.fixture
async def store(tmp_path: Path):
    opened = open_store(tmp_path / "drafts.sqlite3")
    yield opened
    await opened.close()


async def test_create_get_update_list(store: SqliteDraftStore) -> None:
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


async def test_stale_update_is_a_conflict_and_changes_nothing(store: SqliteDraftStore) -> None:
    draft = await store.create("alice", "t")
    first = draft.with_section(StepName.MODEL, StepSection(status=StepStatus.VALID))
    stale = draft.with_section(StepName.MODEL, StepSection(status=StepStatus.INVALID))
    await store.update(first)
    with pytest.raises(DraftConflictError) as exc:
        await store.update(stale)
    assert "expected version 1, found 2" in str(exc.value)
    assert (await store.get(draft.id, "alice")).model.status is StepStatus.VALID


async def test_other_owners_drafts_are_not_found(store: SqliteDraftStore) -> None:
    draft = await store.create("alice", "private")
    with pytest.raises(DraftNotFoundError):
        await store.get(draft.id, "bob")
    assert await store.list("bob") == []
    with pytest.raises(DraftNotFoundError):
        await store.update(draft.model_copy(update={"owner": "bob"}))
    with pytest.raises(DraftNotFoundError, match="No draft 'missing' was found"):
        await store.get("missing", "alice")


async def test_draft_limit_per_owner(tmp_path: Path) -> None:
    store = open_store(tmp_path / "d.sqlite3", max_drafts=2)
    try:
        await store.create("alice", "1")
        await store.create("alice", "2")
        with pytest.raises(DraftLimitError, match="already have 2 drafts"):
            await store.create("alice", "3")
        await store.create("bob", "1")  # the limit is per owner
    finally:
        await store.close()


async def test_uses_wal(store: SqliteDraftStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_concurrent_writers_in_one_process_never_lose_an_update(
    store: SqliteDraftStore,
) -> None:
    """Twenty tasks race read-modify-write cycles; each win is kept, each loss is a conflict."""
    draft = await store.create("alice", "race")
    outcomes: list[str] = []

    async def writer(n: int) -> None:
        current = await store.get(draft.id, "alice")
        payload = {**current.config.payload, f"w{n}": n}
        try:
            await store.update(current.with_section(StepName.CONFIG, StepSection(payload=payload)))
            outcomes.append("saved")
        except DraftConflictError:
            outcomes.append("conflict")

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(writer, n)

    final = await store.get(draft.id, "alice")
    saved = outcomes.count("saved")
    assert saved >= 1 and saved + outcomes.count("conflict") == 20
    assert final.version == 1 + saved
    # every saved write built on the one before it, so the payload holds exactly `saved` keys
    assert len(final.config.payload) == saved


WRITER = textwrap.dedent(
    """
    import sys, anyio
    from pathlib import Path
    from server.drafts import DraftConflictError, StepName, StepSection
    from server.drafts.sqlite import SqliteDraftStore

    async def main(path, draft_id, tag, rounds):
        store = SqliteDraftStore(Path(path), busy_timeout_s=10, max_drafts_per_owner=10)
        saved = 0
        for i in range(rounds):
            while True:
                draft = await store.get(draft_id, "alice")
                payload = {**draft.config.payload, f"{tag}{i}": i}
                try:
                    section = StepSection(payload=payload)
                    await store.update(draft.with_section(StepName.CONFIG, section))
                    saved += 1
                    break
                except DraftConflictError:
                    continue
        await store.close()
        print(saved)

    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
    """
)


async def test_two_writer_processes_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    store = open_store(path)
    draft = await store.create("alice", "shared")
    rounds = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), draft.id, tag, str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [int(o) for o in outputs] == [rounds, rounds]
    final = await store.get(draft.id, "alice")
    assert final.version == 1 + 2 * rounds
    assert len(final.config.payload) == 2 * rounds  # no write overwrote another
    await store.close()


async def test_drafts_survive_a_process_restart(tmp_path: Path) -> None:
    path = tmp_path / "restart.sqlite3"
    create = textwrap.dedent(
        """
        import sys, anyio
        from pathlib import Path
        from server.drafts.sqlite import SqliteDraftStore

        async def main():
            store = SqliteDraftStore(Path(sys.argv[1]), busy_timeout_s=5, max_drafts_per_owner=5)
            draft = await store.create("alice", "kept")
            print(draft.id)

        anyio.run(main)
        """
    )
    draft_id = subprocess.run(
        [sys.executable, "-c", create, str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    store = open_store(path)
    try:
        assert (await store.get(draft_id, "alice")).title == "kept"
    finally:
        await store.close()


def test_unusable_database_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.sqlite3"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(DraftStoreError, match="Cannot open the drafts database"):
        open_store(path)
