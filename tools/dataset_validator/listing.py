"""list_datasets: the dataset files in the allowed roots and, when configured, the Supabase catalog.

Each local file's format is sniffed from its first records, so the user sees at a glance which
file holds chat, preference or plain-text data before validating anything.
"""

from pathlib import Path

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.formats import detect
from tools.dataset_validator.kinds import Format
from tools.dataset_validator.readers import (
    DecompressionBudget,
    RecordReader,
    UnreadableFileError,
    file_type,
)
from tools.dataset_validator.results import DatasetEntry, DatasetListing, ListingSource
from tools.dataset_validator.roots import inside, resolve_local, walk_dataset_files
from tools.dataset_validator.sources import SUPABASE_PREFIX, Sources
from tools.dataset_validator.supabase_catalog import CatalogEntry
from tools.errors import UserError
from tools.quoting import excerpt


def list_datasets(
    config: DatasetsConfig, sources: Sources, query: str | None, source: ListingSource | None
) -> DatasetListing:
    wanted = (query or "").strip().lower()
    entries: list[DatasetEntry] = []
    notes: list[str] = []
    truncated = False
    if source in (None, "local"):
        truncated = _local(config, sources, wanted, entries)
        if not sources.roots:
            notes.append(
                "No local folder is open: the operator lists them in datasets.roots; over "
                "stdio your MCP client's roots count too."
            )
    if source in (None, "supabase"):
        if sources.catalog is None:
            if source == "supabase":
                raise UserError(
                    "The Supabase catalog is not configured: set SUPABASE_URL and SUPABASE_KEY."
                )
        else:
            try:
                rows = sources.catalog.search(wanted or None)
                entries += [_catalogued(row, config.limits.max_quoted_chars) for row in rows]
            except UserError as exc:
                if source == "supabase":
                    raise
                notes.append(f"Supabase catalog skipped: {exc}")
    return DatasetListing(
        datasets=entries,
        roots=[sources.label(root) for root in sources.roots],
        truncated=truncated,
        notes=notes,
    )


def _catalogued(row: CatalogEntry, max_chars: int) -> DatasetEntry:
    """A catalog row as an entry, its text cut to `max_chars`: whoever may write the catalog
    writes it. A name too long to show whole is referred to by the row's id instead."""
    return DatasetEntry(
        ref=f"{SUPABASE_PREFIX}{row.name if len(row.name) <= max_chars else row.id}",
        source="supabase",
        name=excerpt(row.name, max_chars),
        size_bytes=row.size_bytes,
        format=None if row.format is None else excerpt(row.format, max_chars),
        records=row.records,
        description=None if row.description is None else excerpt(row.description, max_chars),
        updated_at=row.updated_at,
    )


def _local(config: DatasetsConfig, sources: Sources, wanted: str, out: list[DatasetEntry]) -> bool:
    """Append matching local files; True when the listing stopped at listing.max_files."""
    listing, roots = config.listing, sources.roots
    budget = DecompressionBudget(config.limits)  # what all the sniffing may decompress
    seen: set[Path] = set()
    for root in roots:
        for path in walk_dataset_files(
            root, config.file_extensions, listing.skip_dirs, listing.max_depth
        ):
            real = path.resolve()
            if real in seen or inside(real, roots, sources.private) is None:
                continue
            seen.add(real)
            name = path.relative_to(root).as_posix()
            if wanted and wanted not in name.lower():
                continue
            if len(out) >= listing.max_files:
                return True
            out.append(
                DatasetEntry(
                    ref=_ref(name, real, sources, config),
                    source="local",
                    name=name,
                    size_bytes=real.stat().st_size,
                    format=_sniff(real, config, budget),
                )
            )
    return False


def _ref(name: str, real: Path, sources: Sources, config: DatasetsConfig) -> str:
    """The short relative ref when it resolves back to this file, else the absolute path."""
    try:
        if resolve_local(name, sources.roots, config.file_extensions, sources.private) == real:
            return name
    except UserError:
        pass
    return str(real)


def _sniff(path: Path, config: DatasetsConfig, budget: DecompressionBudget) -> Format | None:
    """The format of the file's first records; None when they do not say, or the file cannot
    be read within the decompression limits (the listing goes on: validation words why)."""
    kind = file_type(path.name)
    if kind is None:
        return None
    reading = config.reading
    try:
        with RecordReader(path, kind, reading, reading.sniff_bytes, budget) as reader:
            for index, (_, _, value) in enumerate(reader.records()):
                if isinstance(value, dict) and (found := detect(value)) is not None:
                    return found
                if index + 1 >= config.reading.sniff_records:
                    break
    except (UnreadableFileError, OSError, UserError):
        return None
    return None
