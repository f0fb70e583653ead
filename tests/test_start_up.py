"""Start-up runs without the garbage collector, and freezes what it built once the server is up.

A client spawns the server for every chat and waits for its first tools/list; collections of
the objects start-up builds cost a tenth of that wait (tests/bench/bench_startup.py times it).
"""

import gc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import server.app
import server.logging
from server.__main__ import main


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """What the collector was doing while the server was built, and once it ran."""
    seen: dict[str, Any] = {}

    def build_server(*_: Any, **__: Any) -> SimpleNamespace:
        seen["collecting while building"] = gc.isenabled()

        def run() -> None:
            seen["collecting while serving"] = gc.isenabled()
            seen["frozen while serving"] = gc.get_freeze_count()

        return SimpleNamespace(run=run)

    monkeypatch.setattr(server.app, "build_server", build_server)
    monkeypatch.setattr(server.logging, "configure_logging", lambda *_: None)
    yield seen
    gc.unfreeze()  # give this test process its collector back as it was


def test_the_server_is_built_without_collections_then_served_with_them(
    observed: dict[str, Any],
) -> None:
    assert main(["serve"]) == 0
    assert observed["collecting while building"] is False
    assert observed["collecting while serving"] is True
    assert observed["frozen while serving"] > 0
    assert gc.isenabled()


def test_a_command_that_fails_leaves_the_collector_on(observed: dict[str, Any]) -> None:
    assert main(["check-config", "--config-dir", "/nonexistent/configs"]) != 0
    assert gc.isenabled()
