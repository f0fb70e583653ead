"""list_datasets: the dataset files in the allowed roots and, when configured, the Supabase catalog.

Each local file's format is sniffed from its first records, so the user sees at a glance which
file holds chat, preference or plain-text data before validating anything.
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.formats import detect
from tools.dataset_validator.kinds import Format
from tools.dataset_validator.readers import RecordReader, UnreadableFileError, file_type
from tools.dataset_validator.roots import inside, resolve_local, walk_dataset_files
from tools.dataset_validator.sources import SUPABASE_PREFIX, Sources
from tools.errors import UserError

ListingSource = Literal["local", "supabase"]


class DatasetEntry(BaseModel):
    ref: str = Field(description="What validate_datasets takes.")
    source: ListingSource
    name: str
    size_bytes: int | None = None
    format: str | None = Field(default=None, description="Sniffed, or as catalogued.")
    records: int | None = None
    description: str | None = None
    updated_at: str | None = None


class DatasetListing(BaseModel):
    datasets: list[DatasetEntry]
    roots: list[str] = Field(description="Directories local files are read from.")
    truncated: bool = Field(description="More files exist than listing.max_files.")
    notes: list[str] = Field(default_factory=list)


def list_datasets(
    config: DatasetsConfig, sources: Sources, query: str | None, source: ListingSource | None
) -> DatasetListing:
    wanted = (query or "").strip().lower()
    entries: list[DatasetEntry] = []
    notes: list[str] = []
    truncated = False
    if source in (None, "local"):
        truncated = _local(config, sources.roots, wanted, entries)
        if not sources.roots:
            notes.append("No local directory is open: set datasets.roots or offer MCP roots.")
    if source in (None, "supabase"):
        if sources.catalog is None:
            if source == "supabase":
                raise UserError(
                    "The Supabase catalog is not configured: set SUPABASE_URL and SUPABASE_KEY."
                )
        else:
            try:
                for row in sources.catalog.search(wanted or None):
                    entries.append(
                        DatasetEntry(
                            ref=f"{SUPABASE_PREFIX}{row.name}",
                            source="supabase",
                            name=row.name,
                            size_bytes=row.size_bytes,
                            format=row.format,
                            records=row.records,
                            description=row.description,
                            updated_at=row.updated_at,
                        )
                    )
            except UserError as exc:
                if source == "supabase":
                    raise
                notes.append(f"Supabase catalog skipped: {exc}")
    return DatasetListing(
        datasets=entries, roots=[str(r) for r in sources.roots], truncated=truncated, notes=notes
    )


def _local(config: DatasetsConfig, roots: list[Path], wanted: str, out: list[DatasetEntry]) -> bool:
    """Append matching local files; True when the listing stopped at listing.max_files."""
    listing = config.listing
    seen: set[Path] = set()
    for root in roots:
        for path in walk_dataset_files(
            root, config.file_extensions, listing.skip_dirs, listing.max_depth
        ):
            real = path.resolve()
            if real in seen or inside(real, roots) is None:
                continue
            seen.add(real)
            name = path.relative_to(root).as_posix()
            if wanted and wanted not in name.lower():
                continue
            if len(out) >= listing.max_files:
                return True
            out.append(
                DatasetEntry(
                    ref=_ref(name, real, roots, config),
                    source="local",
                    name=name,
                    size_bytes=real.stat().st_size,
                    format=_sniff(real, config),
                )
            )
    return False


def _ref(name: str, real: Path, roots: list[Path], config: DatasetsConfig) -> str:
    """The short relative ref when it resolves back to this file, else the absolute path."""
    try:
        if resolve_local(name, roots, config.file_extensions) == real:
            return name
    except UserError:
        pass
    return str(real)


def _sniff(path: Path, config: DatasetsConfig) -> Format | None:
    kind = file_type(path.name)
    if kind is None:
        return None
    try:
        with RecordReader(path, kind, config.reading, config.reading.sniff_bytes) as reader:
            for index, (_, _, value) in enumerate(reader.records()):
                if isinstance(value, dict) and (found := detect(value)) is not None:
                    return found
                if index + 1 >= config.reading.sniff_records:
                    break
    except (UnreadableFileError, OSError):
        return None
    return None
