"""PostgreSQL drafts as replicas see them: shared between processes, surviving a DB restart,
and every change heard by listeners on every replica.

Every schema, channel and cluster here is named for this run alone, so that suites running at
once on one database server (CI and a developer, two sessions) never meet; the tests that
restart PostgreSQL restart a cluster of their own, never the shared one.
"""

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import psycopg
import pytest
from mcp.server.subscriptions import ResourceUpdated, ServerEvent
from mcp.types import ResourceUpdatedNotification

from server.drafts import DraftStoreError, StepName, StepSection, StepStatus
from server.drafts.notify import PostgresSubscriptionBus
from server.drafts.postgres import PostgresDraftStore
from server.settings import NotificationsConfig, Settings
from tests.support import (
    CONSOLE_SCRIPT,
    TEST_DATABASE_URL,
    TOKENS,
    bearer_client,
    calibration_row,
    drop_schema,
    free_port,
    http_server,
    isolated_env,
    open_postgres_store,
    postgres_overrides,
    postgres_store,
    tokens_env,
    unique_name,
)

# slow: server processes, a database restart, reconnect back-off; and every test here needs the
# PostgreSQL test server, which the fast suite does without
pytestmark = pytest.mark.slow

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"  # curated: selectable with the Hub out of reach


def postgres_env(tmp_path: Path, schema: str, url: str | None = TEST_DATABASE_URL) -> dict:
    env = isolated_env(tmp_path, **postgres_overrides(schema))
    if url:
        env["TRAINING_PACKAGE_MCP_DATABASE_URL"] = url
    return env


def postgres_tool(*args: str) -> None:
    """One of Debian's postgresql-common commands (pg_createcluster, pg_ctlcluster, ...)."""
    subprocess.run(args, check=True, capture_output=True, timeout=120)


@dataclass(frozen=True)
class OwnPostgres:
    """A PostgreSQL cluster of this run's own, for the tests that restart the server."""

    version: str
    name: str
    url: str

    def control(self, action: str) -> None:
        """pg_ctlcluster start, stop or restart this cluster."""
        postgres_tool("pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action)

    def restart(self) -> None:
        self.control("restart")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    """A throwaway cluster on a free port (trust auth, loopback only), dropped afterwards:
    restarting the shared test database would cut off every other suite using it."""
    if shutil.which("pg_createcluster") is None:
        pytest.skip("needs Debian's pg_createcluster (postgresql-common)")
    installed = [p for p in Path("/usr/lib/postgresql").iterdir() if (p / "bin/postgres").exists()]
    version = max(installed, key=lambda p: float(p.name)).name
    name, port = unique_name("tpm_test"), free_port()
    cluster = OwnPostgres(version, name, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    create = ["pg_createcluster", version, name, "--port", str(port), "--start-conf", "manual"]
    postgres_tool(*create, "--", "--auth=trust")
    try:
        cluster.control("start")
        yield cluster
    finally:
        postgres_tool("pg_dropcluster", "--stop", version, name)


def notifications_config(settings: Settings, **changes: object) -> NotificationsConfig:
    """The shipped notification settings on a channel of this test's own."""
    shipped = settings.server.storage.postgres.notifications
    return shipped.model_copy(update={"channel": unique_name("test"), **changes})


async def wait_until(done: Callable[[], bool], timeout_s: float = 30) -> None:
    with anyio.fail_after(timeout_s):
        while not done():
            await anyio.sleep(0.05)


async def test_two_server_processes_share_drafts(tmp_path: Path) -> None:
    schema = unique_name("test")
    env = postgres_env(tmp_path, schema)
    try:
        with http_server(env, "--host", "127.0.0.1") as first, http_server(env) as second:
            async with bearer_client(first, None) as a:
                created = await a.call_tool("create_draft", {"title": "shared"})
                draft_id = created.structured_content["draft_id"]
            async with bearer_client(second, None) as b:
                (content,) = (await b.read_resource(f"package://drafts/{draft_id}")).contents
                assert json.loads(content.text)["title"] == "shared"
                listing = json.loads((await b.read_resource("package://drafts")).contents[0].text)
                assert [d["id"] for d in listing["drafts"]] == [draft_id]
    finally:
        drop_schema(schema)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "TRAINING_PACKAGE_MCP_DATABASE_URL is not set"),
        ("postgresql://postgres:pw@127.0.0.1:9/test", "Cannot reach the drafts database"),
    ],
    ids=["no-url", "unreachable"],
)
def test_database_problems_at_start_up_are_clear(
    tmp_path: Path, url: str | None, message: str
) -> None:
    result = subprocess.run(
        [CONSOLE_SCRIPT, "serve"],
        env=postgres_env(tmp_path, unique_name("unused"), url),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "pw@" not in result.stderr  # the URL's password is never printed


async def test_the_store_reconnects_after_a_database_restart(own_postgres: OwnPostgres) -> None:
    async with postgres_store(url=own_postgres.url) as store:
        draft = await store.create("alice", "survives")
        own_postgres.restart()
        deadline = time.monotonic() + 30
        while True:  # the server may take a moment to accept connections again
            try:
                reread = await store.get(draft.id, "alice")
                break
            except DraftStoreError:
                if time.monotonic() > deadline:
                    raise
                await anyio.sleep(0.5)
        assert reread.title == "survives"
        saved = await store.update(
            reread.with_section(StepName.MODEL, StepSection(status=StepStatus.VALID))
        )
        assert saved.version == 2


async def test_a_calibration_row_written_on_one_replica_is_read_on_another() -> None:
    """Two replicas on one database: the row a status call wrote through one is there for the
    status call another serves, and the same run written on both at once is kept once."""
    schema = unique_name("test")
    stores = []
    try:
        with anyio.fail_after(60):
            for _ in range(2):
                stores.append(await open_postgres_store(schema))
            first, second = stores
            started = datetime(2026, 12, 6, 9, tzinfo=UTC)
            row = calibration_row("d1", started, datetime(2026, 12, 6, 10, tzinfo=UTC))
            assert await first.add_calibration("alice", row)
            assert await second.calibration("alice", limit=5) == [row]
            assert await second.calibration("bob", limit=5) == []

            later = calibration_row("d1", datetime(2026, 12, 6, 11, tzinfo=UTC), started)
            added: list[bool] = []

            async def add(store: PostgresDraftStore) -> None:
                added.append(await store.add_calibration("alice", later))

            async with anyio.create_task_group() as group:
                for store in stores:
                    group.start_soon(add, store)
            assert sorted(added) == [False, True]
            assert await first.calibration("alice", limit=5) == [row, later]
    finally:
        for store in stores:
            await store.close()
        drop_schema(schema)


async def test_buses_on_one_channel_deliver_every_change_to_every_replica(
    settings: Settings,
) -> None:
    config = notifications_config(settings, keepalive_s=0.2)
    event = ResourceUpdated(uri="package://drafts/abc")
    heard: list[list[ServerEvent]] = [[], []]
    async with (
        postgres_store() as first,
        postgres_store() as second,
        anyio.create_task_group() as background,
    ):
        buses = [PostgresSubscriptionBus(config) for _ in heard]
        for bus, store, events in zip(buses, (first, second), heard, strict=True):
            await background.start(bus.relay, store)
            bus.subscribe(events.append)
        await first.notify(config.channel, "not an event")  # anyone may NOTIFY: skipped
        await buses[1].publish(ResourceUpdated(uri="x" * 9000))  # too long: logged, not raised
        await anyio.sleep(3 * config.keepalive_s)  # the listeners survive keepalive checks
        await buses[0].publish(event)
        await wait_until(lambda: heard == [[event], [event]])
        background.cancel_scope.cancel()


@pytest.mark.parametrize("loss", ["terminated", "restarted"])
async def test_the_listener_reconnects_when_its_connection_is_lost(
    settings: Settings, loss: str, request: pytest.FixtureRequest
) -> None:
    restartable = request.getfixturevalue("own_postgres") if loss == "restarted" else None
    url = restartable.url if restartable else TEST_DATABASE_URL
    config = notifications_config(settings)
    heard: list[ServerEvent] = []
    async with postgres_store(url=url) as store, anyio.create_task_group() as background:
        bus = PostgresSubscriptionBus(config)
        await background.start(bus.relay, store)
        bus.subscribe(heard.append)
        if restartable:
            restartable.restart()
        else:
            with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as conn:
                terminated = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                    (f'LISTEN "{config.channel}"',),
                ).fetchall()
            assert terminated == [(True,)]
        with anyio.fail_after(60):
            while not heard:  # a publish while the database is away is logged, not raised
                await bus.publish(ResourceUpdated(uri="package://drafts"))
                await anyio.sleep(config.reconnect_min_s)
        background.cancel_scope.cancel()


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")
async def test_a_change_saved_on_one_replica_reaches_listeners_on_another(
    tmp_path: Path,
) -> None:
    schema = unique_name("test")
    env = tokens_env(
        tmp_path, **postgres_overrides(schema), TRAINING_PACKAGE_MCP_DATABASE_URL=TEST_DATABASE_URL
    )
    stateful = {**env, "TRAINING_PACKAGE_MCP__SERVER__TRANSPORT__HTTP__STATELESS": "false"}
    legacy_heard: list[str] = []

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            legacy_heard.append(str(message.params.uri))

    try:
        with http_server(env) as first, http_server(env) as second, http_server(stateful) as third:
            async with (
                bearer_client(first, TOKENS["alice"]) as on_first,
                bearer_client(second, TOKENS["alice"]) as on_second,
                bearer_client(
                    third, TOKENS["alice"], mode="legacy", message_handler=on_message
                ) as legacy,
            ):
                created = await on_second.call_tool("create_draft", {"title": "shared"})
                draft_id = created.structured_content["draft_id"]
                uri = f"package://drafts/{draft_id}"
                await legacy.session.subscribe_resource(uri)
                async with on_first.listen(resource_subscriptions=[uri]) as subscription:
                    saved = await on_second.call_tool(
                        "select_model", {"draft_id": draft_id, "model_id": QWEN}
                    )
                    assert not saved.is_error
                    with anyio.fail_after(30):
                        event = await subscription.__anext__()
                    assert event.uri == uri
                await wait_until(lambda: uri in legacy_heard)
            async with bearer_client(first, TOKENS["bob"]) as bob:
                with pytest.raises(Exception, match="No draft"):
                    async with bob.listen(resource_subscriptions=[uri]):
                        pass
    finally:
        drop_schema(schema)
