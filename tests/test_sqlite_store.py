"""What only the SQLite store must show: WAL, writers in two processes, restarts, a bad file.

The DraftStore contract itself is tested against both backends in test_draft_stores.py.
"""

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from server.drafts import (
    DraftStoreError,
)
from server.drafts.sqlite import SqliteDraftStore


def open_store(path: Path, max_drafts: int = 100) -> SqliteDraftStore:
    return SqliteDraftStore(path, busy_timeout_s=5, max_drafts_per_owner=max_drafts)


@pytest.fixture
async def store(tmp_path: Path):
    opened = open_store(tmp_path / "drafts.sqlite3")
    yield opened
    await opened.close()


async def test_uses_wal(store: SqliteDraftStore) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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


@pytest.mark.slow
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


@pytest.mark.slow
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
