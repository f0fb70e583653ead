"""Where a package goes: a directory inside the configured package roots, never elsewhere."""

import os
import re
import unicodedata
from pathlib import Path

from tools.errors import UserError
from tools.package_builder.config import OutputConfig

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def package_destination(
    output: OutputConfig, output_dir: str | None, title: str, draft_id: str
) -> Path:
    """The real path the package will have: `output_dir` (relative to output.root), or
    <output.root>/<title slug>-<draft id>; UserError when that is outside every root."""
    roots = [_real(output.root), *(_real(root) for root in output.extra_roots)]
    if output_dir is None or not output_dir.strip():
        return roots[0] / default_name(title, draft_id, output.slug_max_chars)
    given = Path(output_dir.strip()).expanduser()
    real = _real(given if given.is_absolute() else roots[0] / given)
    if not any(real != root and real.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise UserError(
            f"Refused: {output_dir} resolves to {real}, which is not inside the package "
            f"directories ({shown}). Give a path inside one of them (a relative path lands in "
            f"{roots[0]}), or add its parent to output.extra_roots in configs/package.yaml."
        )
    return real


def default_name(title: str, draft_id: str, max_chars: int) -> str:
    """<title slug>-<draft id>, e.g. support-bot-v1-3f9a1c2b7d4e; the id alone for no title."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_title.lower()).strip("-")[:max_chars].rstrip("-")
    return f"{slug}-{draft_id}" if slug else draft_id


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))
