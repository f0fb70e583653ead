"""Dataset refs and their files: a local path, `supabase:<id-or-name>`, `hf:<owner>/<name>[:split]`.

Every source ends as local files the readers stream: local files where they are, Hub files in the
Hugging Face cache, Supabase files in the run's temporary folder.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.hub import HubAccess, dataset_files
from tools.dataset_validator.readers import file_type
from tools.dataset_validator.results import SourceKind
from tools.dataset_validator.roots import resolve_local
from tools.dataset_validator.supabase_catalog import SupabaseAccess, SupabaseCatalog
from tools.errors import UserError
from tools.quoting import excerpt, quote

SUPABASE_PREFIX = "supabase:"
HUB_PREFIX = "hf:"


@dataclass(frozen=True)
class DatasetFile:
    name: str
    path: Path


@dataclass(frozen=True)
class ResolvedDataset:
    ref: str
    source: SourceKind
    location: str
    files: list[DatasetFile]


class Sources:
    """Resolves refs against the allowed roots, the Hub and (when configured) Supabase.

    `private`: folders no local ref may reach even inside a root (the package folders, the
    server's data). `labels`: how a root is shown instead of its path (say, the bundled
    samples, whose path would tell where the server is installed).
    """

    def __init__(
        self,
        config: DatasetsConfig,
        roots: list[Path],
        hub: HubAccess,
        supabase: SupabaseAccess | None,
        *,
        private: list[Path] | None = None,
        labels: dict[Path, str] | None = None,
    ) -> None:
        self._config = config
        self.roots = roots
        self.private = private or []
        self._labels = labels or {}
        self._hub = hub
        self.catalog = (
            SupabaseCatalog(supabase, config.supabase, config.limits.max_quoted_chars)
            if supabase
            else None
        )

    def label(self, root: Path) -> str:
        """How `root` is shown to the user."""
        return self._labels.get(root, str(root))

    def resolve(self, ref: str, workdir: Path, checkpoint: Callable[[], None]) -> ResolvedDataset:
        ref = ref.strip()
        if not ref:
            raise UserError("A dataset ref is empty: give a path, supabase:<name> or hf:<repo>.")
        if ref.startswith(SUPABASE_PREFIX):
            return self._supabase(
                ref, ref.removeprefix(SUPABASE_PREFIX).strip(), workdir, checkpoint
            )
        if ref.startswith(HUB_PREFIX):
            return self._hub_dataset(ref, ref.removeprefix(HUB_PREFIX).strip(), checkpoint)
        path = resolve_local(ref, self.roots, self._config.file_extensions, self.private)
        # the real path: finalize_package copies the file from where it was validated
        return ResolvedDataset(ref, "local", str(path), [DatasetFile(path.name, path)])

    def _supabase(
        self, ref: str, ident: str, workdir: Path, checkpoint: Callable[[], None]
    ) -> ResolvedDataset:
        if self.catalog is None:
            raise UserError(
                f"'{ref}' needs the Supabase catalog: set SUPABASE_URL and SUPABASE_KEY in the "
                "server's environment."
            )
        if not ident:
            raise UserError("Write supabase:<id-or-name>, e.g. supabase:support-chats.")
        entry, most = self.catalog.find(ident), self._config.limits.max_quoted_chars
        if file_type(entry.storage_path) is None:
            raise UserError(
                f"Catalog entry {quote(entry.name, most)} points at "
                f"{quote(entry.storage_path, most)}, not a file type this server reads "
                f"({', '.join(self._config.file_extensions)})."
            )
        folder = workdir / f"supabase-{entry.id}"
        folder.mkdir(parents=True, exist_ok=True)
        path = self.catalog.download(
            entry, folder, self._config.limits.max_download_bytes, checkpoint
        )
        location = excerpt(f"{self._config.supabase.storage_bucket}/{entry.storage_path}", most)
        return ResolvedDataset(ref, "supabase", location, [DatasetFile(path.name, path)])

    def _hub_dataset(self, ref: str, spec: str, checkpoint: Callable[[], None]) -> ResolvedDataset:
        repo_id, _, split = spec.partition(":")
        files = dataset_files(
            repo_id.strip(),
            split.strip() or None,
            self._config.hub.default_split,
            self._hub,
            self._config.limits,
            self._config.file_extensions,
            checkpoint,
        )
        location = f"{repo_id}: {', '.join(name for name, _ in files)}"
        return ResolvedDataset(ref, "hub", location, [DatasetFile(n, p) for n, p in files])
