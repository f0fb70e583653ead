"""A process killed with SIGKILL mid-write leaves an SQLite database that opens intact."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from server.drafts.sqlite import SqliteDraftStore

pytestmark = pytest.mark.slow  # kills a writer process mid-write

WRITER = textwrap.dedent(
    """
    import sys, anyio
    from pathlib import Path
    from server.drafts import StepName, StepSection
    from server.drafts.sqlite import SqliteDraftStore

    async def main(path):
        store = SqliteDraftStore(Path(path), busy_timeout_s=5, max_drafts_per_owner=100000)
        draft = await store.create("alice", "crash test")
        print(draft.id, flush=True)
        payload = {"blob": "x" * 200_000}
        n = 0
        while True:  # write until killed: big sections so a kill lands mid-transaction
            n += 1
            draft = await store.update(draft.with_section(
                StepName.CONFIG, StepSection(payload={**payload, "n": n})))
            await store.create("alice", f"filler {n}")

    anyio.run(main, sys.argv[1])
    """
)


def test_sigkill_during_writes_leaves_a_consistent_database(tmp_path: Path) -> None:
    path = tmp_path / "drafts.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        draft_id = proc.stdout.readline().strip()
        time.sleep(1.5)  # let it get well into its write loop
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    async def reopen() -> int:
        store = SqliteDraftStore(path, busy_timeout_s=5, max_drafts_per_owner=100000)
        try:
            draft = await store.get(draft_id, "alice")
            assert draft.config.payload["n"] == draft.version - 1  # a whole write, never half
            return draft.version
        finally:
            await store.close()

    assert anyio.run(reopen) >= 2
