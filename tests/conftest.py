"""Shared fixtures."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.settings import Settings, load_settings
from tests.fake_hub import FakeHub, serve_fake_hub
from tests.support import isolated_env, seed_models


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shipped settings, with the drafts database in the test's temporary directory."""
    return load_settings(env=isolated_env(tmp_path))


@pytest.fixture
def fake_hub() -> Iterator[tuple[FakeHub, str]]:
    """A local Hub with a handful of realistic models; yields (hub, base URL)."""
    with serve_fake_hub() as (hub, url):
        seed_models(hub)
        yield hub, url
