"""Local datasets: read only from inside the allowed roots, with no way out by `..` or symlink.

A path is resolved to its real location first (every `..` and symlink followed) and accepted
only when that real location is inside a root and outside every private folder (the package
folders, the server's data); relative paths are tried against each root in order. A refusal
says only that the path is outside the allowed folders: it never says where a link leads, nor
whether something exists out there, nor where the roots are on the server's disk.
"""

import fnmatch
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tools.dataset_validator.readers import file_type
from tools.errors import UserError


def allowed_roots(roots: Iterable[Path]) -> list[Path]:
    """The real paths of the roots that exist, first occurrence first, without repeats."""
    found: list[Path] = []
    for root in roots:
        real = Path(os.path.realpath(Path(root).expanduser()))
        if real.is_dir() and real not in found:
            found.append(real)
    return found


def inside(path: Path, roots: list[Path], private: Iterable[Path] = ()) -> Path | None:
    """The root a real path lies in, or None (also when it lies in a private folder)."""
    if any(path.is_relative_to(folder) for folder in private):
        return None
    return next((root for root in roots if path.is_relative_to(root)), None)


def resolve_local(
    ref: str, roots: list[Path], extensions: list[str], private: Iterable[Path] = ()
) -> Path:
    """The real path of a local dataset file inside a root; UserError saying why not."""
    if not roots:
        raise UserError(
            "No local folder is open to this server: the operator lists them in datasets.roots "
            "(configs/datasets.yaml); over stdio your MCP client's roots count too. Use "
            "supabase:<name> or hf:<owner>/<name> instead."
        )
    if "\x00" in ref:
        raise UserError("A dataset ref contains a NUL character (\\x00); no path holds one.")
    given = Path(ref).expanduser()
    candidates = [given] if given.is_absolute() else [root / given for root in roots]
    private = list(private)
    outside = False
    for candidate in candidates:
        real = Path(os.path.realpath(candidate))
        if inside(real, roots, private) is None:
            outside = True
            continue
        if real.is_dir():
            raise UserError(f"'{ref}' is a directory; name a dataset file inside it.")
        if real.is_file():
            if not real.name.lower().endswith(tuple(extensions)) or file_type(real.name) is None:
                raise UserError(
                    f"'{ref}' is not a dataset file this server reads: use one of "
                    f"{', '.join(extensions)}."
                )
            return real
    if outside:
        raise UserError(
            f"Refused: '{ref}' is outside the allowed folders. list_datasets shows the dataset "
            "files you can use; to use another, move it into one of them."
        )
    raise UserError(
        f"No file '{ref}' in the allowed folders; list_datasets shows the dataset files there."
    )


def walk_dataset_files(
    root: Path, extensions: list[str], skip: list[str], max_depth: int
) -> Iterator[Path]:
    """Dataset files under `root`, in name order, not following directory symlinks (the caller
    checks each file's real path with `inside`)."""
    pending = [(root, 0)]
    while pending:
        folder, depth = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth < max_depth and not any(fnmatch.fnmatch(entry.name, p) for p in skip):
                    subfolders.append((Path(entry.path), depth + 1))
            elif entry.name.lower().endswith(tuple(extensions)) and entry.is_file():
                yield Path(entry.path)
        pending.extend(reversed(subfolders))
