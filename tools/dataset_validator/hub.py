"""Hugging Face Hub files for `hf:` datasets and for the model's tokenizer, via huggingface_hub.

Offline (HF_HUB_OFFLINE) means the local cache only. Online, a bounded metadata call comes first
(it fails fast when the Hub is unreachable, where a bare download would retry for half a minute),
then files are downloaded into the Hugging Face cache, so the next validation reads them locally.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from huggingface_hub import hf_hub_download
from huggingface_hub.constants import is_offline_mode
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HFValidationError,
    HTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from tools.dataset_validator.config import LimitsConfig
from tools.dataset_validator.readers import file_type
from tools.errors import UserError
from tools.hub_http import HubUnavailable

if TYPE_CHECKING:
    from huggingface_hub import HfApi

REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
TOKENIZER_FILE = "tokenizer.json"
# huggingface_hub's transport errors; HubUnavailable: the retrying transport tools.hub_http
# installs at start-up for every huggingface_hub request in the process gives up with it.
NETWORK_ERRORS = (HTTPError, OSError, HubUnavailable)


@dataclass(frozen=True)
class HubAccess:
    """Where the Hub is and how long to wait for it; the token never shows in a repr."""

    endpoint: str | None
    timeout_s: float
    token: str | None = field(default=None, repr=False)
    cache_dir: Path | None = None

    def api(self) -> "HfApi":
        from huggingface_hub import HfApi  # on first use: hf_api adds ~12 MB to a process

        return HfApi(endpoint=self.endpoint, token=self.token)


def dataset_files(
    repo_id: str,
    split: str | None,
    default_split: str,
    hub: HubAccess,
    limits: LimitsConfig,
    extensions: list[str],
    checkpoint: Callable[[], None],
) -> list[tuple[str, Path]]:
    """(name in the repo, local path) of the split's files, in the cache (downloaded if online).

    limits.max_download_bytes counts the files as stored (compressed: a 33 KB Parquet file may
    hold a 1 GiB value). What they decompress to is bounded when they are read, as a local
    file's is: RecordReader holds each to max_decompressed_bytes_per_file,
    max_compression_ratio and max_parquet_column_chunk_bytes, and a call to
    max_decompressed_bytes_per_call."""
    if not is_repo_id(repo_id):
        raise UserError(f"'hf:{repo_id}' is not a Hub dataset id; write hf:<owner>/<name>[:split].")
    if is_offline_mode():
        return _cached_files(repo_id, split, default_split, extensions, hub.cache_dir)
    try:
        info = hub.api().dataset_info(repo_id, files_metadata=True, timeout=hub.timeout_s)
    except GatedRepoError as exc:
        raise UserError(
            f"hf:{repo_id} is gated: accept its terms on the Hub and set HF_TOKEN."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise UserError(
            f"No Hub dataset hf:{repo_id} (or it is private: set HF_TOKEN to a token that can "
            "read it)."
        ) from exc
    except NETWORK_ERRORS as exc:
        raise UserError(
            f"The Hub could not be reached for hf:{repo_id} ({type(exc).__name__}); try again, "
            "or set HF_HUB_OFFLINE=1 to use the local cache."
        ) from exc
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    chosen = _pick(repo_id, sorted(sizes), split, default_split, extensions)
    if len(chosen) > limits.max_files_per_dataset:
        raise UserError(
            f"hf:{repo_id} has {len(chosen)} files for this split, more than "
            f"limits.max_files_per_dataset ({limits.max_files_per_dataset}); pick a split or "
            "raise the limit."
        )
    total = sum(sizes[name] or 0 for name in chosen)
    if total > limits.max_download_bytes:
        raise UserError(
            f"hf:{repo_id} is {total:,} bytes for this split, more than limits.max_download_bytes "
            f"({limits.max_download_bytes:,}); pick a smaller split or raise the limit."
        )
    files = []
    for name in chosen:
        checkpoint()
        try:
            path = hf_hub_download(
                repo_id,
                name,
                repo_type="dataset",  # main, so that offline runs find it in the cache
                endpoint=hub.endpoint,
                token=hub.token,
                etag_timeout=hub.timeout_s,
                cache_dir=hub.cache_dir,
            )
        except (GatedRepoError, EntryNotFoundError, *NETWORK_ERRORS) as exc:
            raise UserError(f"Downloading {name} from hf:{repo_id} failed: {exc}") from exc
        files.append((name, Path(path)))
    return files


def is_repo_id(repo_id: str) -> bool:
    """<owner>/<name> as the Hub allows it (no `..`, no leading dot or dash, bounded length)."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return REPO_ID.match(repo_id) is not None


def _cached_files(
    repo_id: str,
    split: str | None,
    default_split: str,
    extensions: list[str],
    cache_dir: Path | None,
) -> list[tuple[str, Path]]:
    from huggingface_hub import snapshot_download  # on first use, as in HubAccess.api

    try:
        folder = Path(
            snapshot_download(
                repo_id, repo_type="dataset", local_files_only=True, cache_dir=cache_dir
            )
        )
    except LocalEntryNotFoundError as exc:
        raise UserError(
            f"HF_HUB_OFFLINE is set and hf:{repo_id} is not in the local Hugging Face cache; "
            "unset HF_HUB_OFFLINE to download it, or use a local copy."
        ) from exc
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return [(n, folder / n) for n in _pick(repo_id, names, split, default_split, extensions)]


def _pick(
    repo_id: str, names: list[str], split: str | None, default_split: str, extensions: list[str]
) -> list[str]:
    """The data files of `split`: a path part named after it (train.jsonl, data/train-0.parquet).

    Without a split, the default split's files, or every data file when none is named after it.
    """
    data = [n for n in names if n.lower().endswith(tuple(extensions)) and file_type(n)]
    if not data:
        raise UserError(
            f"hf:{repo_id} has no data files this server reads ({', '.join(extensions)})."
        )
    matched = [n for n in data if _in_split(n, split or default_split)]
    if matched or split is None:
        return matched or data  # no file named after the default split: one split in all
    shown = ", ".join(data[:10]) + (" ..." if len(data) > 10 else "")
    raise UserError(f"hf:{repo_id} has no files for split '{split}'. Its data files: {shown}")


def _in_split(name: str, split: str) -> bool:
    pattern = re.compile(rf"{re.escape(split)}([-_.].*)?", re.IGNORECASE)
    return any(pattern.fullmatch(part) for part in PurePosixPath(name).parts)


def tokenizer_file(
    model_id: str, revision: str | None, hub: HubAccess, allow_download: bool
) -> tuple[Path | None, str]:
    """The model's tokenizer.json (from the cache, else downloaded), or None and the reason."""
    try:
        cached = hf_hub_download(
            model_id,
            TOKENIZER_FILE,
            revision=revision,
            local_files_only=True,
            cache_dir=hub.cache_dir,
        )
        return Path(cached), f"{model_id} tokenizer.json from the local Hugging Face cache"
    except (LocalEntryNotFoundError, ValueError, OSError):
        pass
    if is_offline_mode():
        return None, f"HF_HUB_OFFLINE is set and {model_id}'s tokenizer is not in the cache"
    if not allow_download:
        return None, f"{model_id}'s tokenizer is not cached and tokens.download_tokenizer is off"
    try:
        info = hub.api().model_info(model_id, revision=revision, timeout=hub.timeout_s)
        if TOKENIZER_FILE not in {s.rfilename for s in info.siblings or []}:
            return None, f"{model_id} has no {TOKENIZER_FILE} (no fast tokenizer)"
        path = hf_hub_download(
            model_id,
            TOKENIZER_FILE,
            revision=revision,
            endpoint=hub.endpoint,
            token=hub.token,
            etag_timeout=hub.timeout_s,
            cache_dir=hub.cache_dir,
        )
    except GatedRepoError:
        return None, f"{model_id} is gated: accept its licence on the Hub and set HF_TOKEN"
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None, f"{model_id} was not found on the Hub"
    except (EntryNotFoundError, *NETWORK_ERRORS) as exc:
        return None, f"{model_id}'s tokenizer could not be downloaded ({type(exc).__name__})"
    return Path(path), f"{model_id} tokenizer.json downloaded from the Hub"
