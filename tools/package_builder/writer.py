"""Write a package all at once or not at all: a hidden staging directory beside the destination,
renamed into place when every file is written, removed when anything fails.

A write holds a lock file beside its staging directory from start to end, so what a killed
process left behind (staging directories full of data copies, a replaced package moved aside)
is told apart from a write still in progress, and swept away by `sweep_leftovers`.

Every byte goes through one opener (`open_file`), so a test can make the disk fill up at any
write without replacing the writer itself. A write error becomes a UserError that says what
happened, where, and what to do, and names anything that could not be cleaned up.
"""

import errno
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from pydantic import BaseModel

from tools.errors import UserError
from tools.package_builder.config import MANIFEST_NAME

if TYPE_CHECKING:
    from filelock import FileLock

OpenFile = Callable[[Path], BinaryIO]
COPY_CHUNK = 1 << 20
_TOKEN_BYTES = 4
_STAGING, _REPLACED, _LOCK = "partial", "replaced", "lock"
# .<destination name>.<kind>-<token>: what one write makes beside its destination
_LEFTOVER = re.compile(
    rf"^\.(?P<name>.+)\.(?:{_STAGING}|{_REPLACED}|{_LOCK})"
    rf"-(?P<token>[0-9a-f]{{{2 * _TOKEN_BYTES}}})$"
)
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

    An existing non-empty destination is refused unless `overwrite`, and replaced only when it
    is a package (it holds package.yaml): then it is moved aside, replaced and removed, and put
    back if the replacement fails.
    """
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        write = _Write.begin(destination)
    except OSError as exc:  # named by the directory it was to become
        failed = OSError(exc.errno, exc.strerror, str(destination))
        raise UserError(write_failure(failed, destination)) from exc
    try:
        yield StagedPackage(write.staging, open_file)
        write.move_into_place(overwrite)
    except BaseException as exc:
        leftover = _remove(write.staging)
        if isinstance(exc, OSError):
            raise UserError(write_failure(exc, destination, leftover, write.staging)) from exc
        raise
    finally:
        write.end()


def refuse_destination(destination: Path, overwrite: bool) -> None:
    """UserError when what is at `destination` already keeps the package from going there:
    anything at all without `overwrite`, anything but a package with it. Checked before a
    package is built (and before the user is asked anything), and again as it moves in."""
    if overwrite:
        refuse_replacing_other_things(destination)
    else:
        refuse_non_empty(destination)


def refuse_non_empty(destination: Path) -> None:
    """UserError when `destination` holds anything (an empty directory may be filled)."""
    if destination.is_dir() and any(destination.iterdir()):
        raise UserError(
            f"{destination} already exists and is not empty; nothing was written. If it is "
            "your own package from before, pass overwrite=true to replace it; otherwise "
            "choose another output_dir."
        )
    if destination.exists() and not destination.is_dir():
        raise UserError(f"{destination} is a file, not a directory; choose another output_dir.")


def refuse_replacing_other_things(destination: Path) -> None:
    """UserError when overwriting `destination` would replace something that is not a package
    (a folder of packages, or anything else that happens to be there)."""
    refuse = destination.exists() and not (destination / MANIFEST_NAME).is_file()
    if refuse and (not destination.is_dir() or any(destination.iterdir())):
        raise UserError(
            f"{destination} is not a training package (it has no {MANIFEST_NAME}); overwrite "
            "replaces only a package. Choose another output_dir; nothing was written."
        )


@dataclass(frozen=True)
class _Write:
    """One write's staging directory beside its destination, and the lock it holds meanwhile."""

    destination: Path
    token: str
    lock: "FileLock"

    @classmethod
    def begin(cls, destination: Path) -> "_Write":
        """Lock first, then make the staging directory: a sweep never sees it unlocked."""
        from filelock import FileLock  # on first use, as a server starts without writing

        while True:
            token = secrets.token_hex(_TOKEN_BYTES)
            lock = FileLock(_beside(destination, _LOCK, token), timeout=0)
            lock.acquire()  # a new name: nobody else holds it
            write = cls(destination, token, lock)
            try:
                write.staging.mkdir()
            except FileExistsError:
                write.end()
                continue
            except BaseException:
                write.end()
                raise
            return write

    @property
    def staging(self) -> Path:
        return _beside(self.destination, _STAGING, self.token)

    def move_into_place(self, overwrite: bool) -> None:
        staging, destination = self.staging, self.destination
        refuse_destination(destination, overwrite)
        if not overwrite:
            if destination.is_dir():
                destination.rmdir()  # empty: rename cannot replace it everywhere
            os.rename(staging, destination)
            return
        aside = None
        if destination.exists():
            aside = _beside(destination, _REPLACED, self.token)
            aside.mkdir()
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

    def end(self) -> None:
        self.lock.release()
        Path(self.lock.lock_file).unlink(missing_ok=True)


def sweep_leftovers(folder: Path) -> list[Path]:
    """Clear what interrupted writes left in `folder` and the folders below it (packages are not
    entered): staging directories are removed, a package moved aside is put back when its
    replacement never arrived (else removed), and their lock files go. Writes in progress
    hold their locks and are left alone. Returns what was removed or put back."""
    cleared: list[Path] = []
    for parent, subfolders, _ in os.walk(folder):
        here = Path(parent)
        subfolders[:] = [
            name
            for name in subfolders
            if not name.startswith(".") and not (here / name / MANIFEST_NAME).is_file()
        ]
        tokens = {
            (match["name"], match["token"])
            for name in os.listdir(here)
            if (match := _LEFTOVER.match(name))
        }
        for name, token in sorted(tokens):
            cleared += _clear(here / name, token)
    return cleared


def _clear(destination: Path, token: str) -> list[Path]:
    """One interrupted write's leftovers, when no live write holds its lock."""
    from filelock import FileLock, Timeout

    lock = FileLock(_beside(destination, _LOCK, token), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return []  # still being written
    try:
        cleared = []
        aside = _beside(destination, _REPLACED, token)
        if (aside / destination.name).is_dir() and not destination.exists():
            os.rename(aside / destination.name, destination)
            cleared.append(destination)
        for leftover in (_beside(destination, _STAGING, token), aside):
            if leftover.exists():
                _remove(leftover)
                cleared.append(leftover)
        return cleared
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)


def _beside(destination: Path, kind: str, token: str) -> Path:
    return destination.parent / f".{destination.name}.{kind}-{token}"


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
