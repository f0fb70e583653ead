"""Shared fixtures."""

from pathlib import Path

import pytest

from server.settings import Settings, load_settings
from tests.support import isolated_env


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The shipped settings, with the drafts database in the test's temporary directory."""
    return load_settings(env=isolated_env(tmp_path))
