"""Where a package goes: inside its owner's own folder of the package roots, never elsewhere.

Each owner (a token's subject, or the operating-system user) has a folder in every package
root, named by a slug and a hash of the owner: readable, filesystem-safe, and never shared by
two owners whose names slug alike. A refusal names no path of the server's disk.
"""

import hashlib
import os
import re
import shutil
import unicodedata
from pathlib import Path

from tools.errors import UserError
from tools.package_builder.config import MANIFEST_NAME, OutputConfig

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
OWNER_HASH_CHARS = 12
"""Hex digits of the owner's sha256 in its folder name: 48 bits, no collision among owners."""


def owner_folders(output: OutputConfig, root: Path, owner: str) -> list[Path]:
    """The owner's folder in the package root (the default) and in each extra root, as real
    paths; `root` is output.root resolved by the caller (None there means a data directory)."""
    name = owner_folder(owner, output.slug_max_chars)
    return [_real(base) / name for base in (root, *output.extra_roots)]


def owner_folder(owner: str, max_chars: int) -> str:
    """<owner slug>-<hash>, e.g. alice-example-com-2bd806c97f0e; the hash alone for no slug."""
    digest = hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()
    slug = _slug(owner, max_chars)
    return f"{slug}-{digest[:OWNER_HASH_CHARS]}" if slug else digest[:OWNER_HASH_CHARS]


def package_destination(
    folders: list[Path], output_dir: str | None, title: str, draft_id: str, slug_max_chars: int
) -> Path:
    """The real path the package will have: `output_dir` (relative to the owner's first
    folder), or <first folder>/<title slug>-<draft id>; UserError when that is outside the
    owner's folders."""
    if output_dir is None or not output_dir.strip():
        return folders[0] / default_name(title, draft_id, slug_max_chars)
    given = Path(output_dir.strip()).expanduser()
    real = _real(given if given.is_absolute() else folders[0] / given)
    if not any(real != folder and real.is_relative_to(folder) for folder in folders):
        raise UserError(
            "Refused: that output_dir is outside your package folder. Give a relative path "
            "such as 'support-bot-v2' (it lands in your folder), or leave output_dir out for "
            "the default name."
        )
    return real


def remove_package(package: Path, folders: list[Path]) -> bool:
    """Remove a package folder a draft wrote, when it is a package inside the owner's folders
    (one written before the package roots changed is left alone); whether it was removed."""
    real = _real(package)
    ours = any(real != folder and real.is_relative_to(folder) for folder in folders)
    if not ours or not (real / MANIFEST_NAME).is_file():
        return False
    try:
        shutil.rmtree(real)
    except OSError as exc:
        raise UserError(
            f"The package folder {package} could not be removed ({exc.strerror}); the draft "
            "is kept. Check the folder's permissions, then try again."
        ) from exc
    return True


def default_name(title: str, draft_id: str, max_chars: int) -> str:
    """<title slug>-<draft id>, e.g. support-bot-v1-3f9a1c2b7d4e; the id alone for no title."""
    slug = _slug(title, max_chars)
    return f"{slug}-{draft_id}" if slug else draft_id


def _slug(text: str, max_chars: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("-", ascii_text.lower()).strip("-")[:max_chars].rstrip("-")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))
