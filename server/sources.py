"""Where a caller's dataset refs may lead: the configured roots (or the transport's default),
the bundled samples, over stdio the client's roots, supabase: and hf:; never the package
folders or the server's data."""

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mcp.types import ListRootsResult

from server.paths import shipped_dir
from server.places import configured_dataset_roots, private_folders
from server.state import AppState
from tools import dataset_validator, hub_http

if TYPE_CHECKING:
    from tools.dataset_validator import HubAccess, Sources

SAMPLES_DIR = "samples"
SAMPLES_LABEL = "samples (bundled with the server)"


def dataset_sources(state: AppState, roots: ListRootsResult) -> "Sources":
    """Where refs may lead for this caller: the configured roots (or the transport's default),
    the bundled samples, and over stdio the client's roots; never the private folders."""
    settings = state.settings
    config = settings.datasets
    offered = [_root_path(str(root.uri)) for root in roots.roots]
    candidates = configured_dataset_roots(settings, state.transport)
    if state.transport == "stdio":
        candidates = [*(p for p in offered if p is not None), *candidates]
    labels: dict[Path, str] = {}
    if config.bundled_samples:
        with contextlib.suppress(FileNotFoundError):  # an installation without the samples
            samples = shipped_dir(SAMPLES_DIR)
            candidates.append(samples)
            labels = {real: SAMPLES_LABEL for real in dataset_validator.allowed_roots([samples])}
    secrets = state.secrets
    supabase = (
        dataset_validator.SupabaseAccess(url=secrets.supabase_url, key=secrets.supabase_key)
        if secrets.supabase_url and secrets.supabase_key
        else None
    )
    return dataset_validator.Sources(
        config,
        dataset_validator.allowed_roots(candidates),
        hub_access(state),
        supabase,
        private=private_folders(settings),
        labels=labels,
    )


def _root_path(uri: str) -> Path | None:
    """The directory of a file:// root; other schemes are not directories this server reads."""
    parts = urlsplit(uri)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def hub_access(state: AppState) -> "HubAccess":
    """Where the Hub is and how long to wait for it, with the server's token (and the
    retrying client installed, before the first download)."""
    hub = state.settings.models.hub
    hub_http.install(hub)
    token = state.secrets.hf_token
    return dataset_validator.HubAccess(
        endpoint=str(hub.endpoint).rstrip("/") if hub.endpoint else None,
        timeout_s=hub.timeout_s,
        token=token.get_secret_value() if token else None,
        cache_dir=hub.cache_dir,
    )
