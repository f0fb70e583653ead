"""Write a package all at once or not at all: a hidden staging directory beside the destination,
renamed into place when every file is written, removed when anything fails.

Every byte goes through one opener (`open_file`), so a test can make the disk fill up at any
write without replacing the writer itself. A write error becomes a UserError that says what
happened, where, and what to do, and names anything that could not be cleaned up.
"""

import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pydantic import BaseModel

from tools.errors import UserError

OpenFile = Callable[[Path], BinaryIO]
COPY_CHUNK = 1 << 20
_STAGING_PREFIX = "."
_STAGING_SUFFIX = ".partial-"
_REPLACED_SUFFIX = ".replaced-"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


def open_new(path: Path) -> BinaryIO:
    """The production opener: a new file, never an existing one."""
    return open(path, "xb")


class FileDigest(BaseModel):
    sha256: str
    size_bytes: int


class HashingFile:
    """A file being written that keeps its sha256 and size."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> FileDigest:
        return FileDigest(sha256=self._hash.hexdigest(), size_bytes=self.size)


class StagedPackage:
    """The package being written in its staging directory; `digests` lists what is in it."""

    def __init__(self, root: Path, open_file: OpenFile) -> None:
        self.root = root
        self._open_file = open_file
        self.digests: dict[str, FileDigest] = {}

    @contextmanager
    def create(self, name: str) -> Iterator[HashingFile]:
        """A new file at `name` (relative, '/'-separated); its digest is kept when it closes."""
        path = self.root / PurePosixPath(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._open_file(path) as raw:
            file = HashingFile(raw)
            yield file
            raw.flush()
            os.fsync(raw.fileno())
        self.digests[name] = file.digest()

    def write_bytes(self, name: str, data: bytes) -> FileDigest:
        with self.create(name) as file:
            file.write(data)
        return self.digests[name]

    def write_text(self, name: str, text: str) -> FileDigest:
        return self.write_bytes(name, text.encode("utf-8"))

    def copy_in(self, name: str, source: Path) -> FileDigest:
        """Copy `source` to `name`, hashing what was written."""
        with source.open("rb") as src, self.create(name) as file:
            while chunk := src.read(COPY_CHUNK):
                file.write(chunk)
        return self.digests[name]


@contextmanager
def staged(
    destination: Path, overwrite: bool, open_file: OpenFile = open_new
) -> Iterator[StagedPackage]:
    """Yield a StagedPackage; on a clean exit it becomes `destination`, else it is removed.

    An existing non-empty destination is refused unless `overwrite`; then it is moved aside,
    replaced and removed, and put back if the replacement fails.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = _new_dir(destination, _STAGING_SUFFIX)
    except OSError as exc:  # named by the directory it was to become
        failed = OSError(exc.errno, exc.strerror, str(destination))
        raise UserError(write_failure(failed, destination)) from exc
    try:
        yield StagedPackage(staging, open_file)
        _move_into_place(staging, destination, overwrite)
    except BaseException as exc:
        leftover = _remove(staging)
        if isinstance(exc, OSError):
            raise UserError(write_failure(exc, destination, leftover, staging)) from exc
        raise


def refuse_non_empty(destination: Path) -> None:
    """UserError when `destination` holds anything (an empty directory may be filled)."""
    if destination.is_dir() and any(destination.iterdir()):
        raise UserError(
            f"{destination} already exists and is not empty; nothing was written. Pass "
            "overwrite=true to replace it, or choose another output_dir."
        )
    if destination.exists() and not destination.is_dir():
        raise UserError(f"{destination} is a file, not a directory; choose another output_dir.")


def _move_into_place(staging: Path, destination: Path, overwrite: bool) -> None:
    if not overwrite:
        refuse_non_empty(destination)
        if destination.is_dir():
            destination.rmdir()  # empty: rename cannot replace it everywhere
        os.rename(staging, destination)
        return
    aside = None
    if destination.exists():
        aside = _new_dir(destination, _REPLACED_SUFFIX)
        os.rename(destination, aside / destination.name)
    try:
        os.rename(staging, destination)
    except OSError:
        if aside is not None:
            os.rename(aside / destination.name, destination)
            aside.rmdir()
        raise
    if aside is not None:
        _remove(aside)


def _new_dir(destination: Path, suffix: str) -> Path:
    """A new hidden directory beside `destination`, with the permissions the umask gives (a
    package is shared like any directory the user makes, unlike a private temporary one)."""
    while True:
        name = f"{_STAGING_PREFIX}{destination.name}{suffix}{secrets.token_hex(4)}"
        path = destination.parent / name
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def _remove(path: Path) -> Path | None:
    """Remove a directory tree; the path when (part of) it could not be removed."""
    shutil.rmtree(path, ignore_errors=True)
    return path if path.exists() else None


def write_failure(
    exc: OSError, destination: Path, leftover: Path | None = None, staging: Path | None = None
) -> str:
    """What went wrong writing the package at `destination`, and what to do about it (a file
    in the staging directory is named by the place it was to have in the package)."""
    where = Path(exc.filename) if exc.filename else destination
    if staging is not None and where.is_relative_to(staging):
        where = destination / where.relative_to(staging)
    if exc.errno in _DISK_FULL:
        cause = (
            f"The disk is full: writing {where} failed. Free some space on that disk, or choose "
            "an output_dir on another one"
        )
    elif exc.errno in _NOT_ALLOWED and not where.is_relative_to(destination):
        cause = f"No permission to read {where} ({exc.strerror}). Check the file's permissions"
    elif exc.errno in _NOT_ALLOWED:
        cause = (
            f"No permission to write {where} ({exc.strerror}). Choose an output_dir you can "
            "write to, or change the directory's permissions"
        )
    else:
        cause = f"Writing {where} failed: {exc.strerror or exc}. Check the disk and try again"
    if leftover is not None:
        return f"{cause}. The incomplete package at {leftover} could not be removed; delete it."
    return f"{cause}. Nothing was written to {destination}."
