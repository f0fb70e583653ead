"""Where the shipped configs/prompts and the user's data live, from a checkout or a wheel."""

from pathlib import Path

import platformdirs

from server import APP_NAME

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The shipped `configs` or `prompts` directory.

    A wheel carries them inside the package (server/_shipped/, see pyproject.toml); a checkout
    has them at the repository root, next to server/.
    """
    for candidate in (_PACKAGE_DIR / "_shipped" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the shipped {name}/ directory is missing from this installation")


def user_data_dir() -> Path:
    """The per-user data directory (drafts database, caches), created on first use by callers."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False)
