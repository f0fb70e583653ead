"""The Hub calls the model browser makes, through huggingface_hub, with failures sorted out.

Every failure comes out as one of three kinds the service can act on: the model does not exist
(RepositoryNotFoundError, RevisionNotFoundError), it is gated (GatedRepoError), or the Hub is
not usable right now (HubUnavailable: offline mode, network, rate limit, 5xx, malformed answer).
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo

from tools.errors import UserError
from tools.hub_http import HubConfig, HubUnavailable

T = TypeVar("T")

# The ModelInfo fields a search result or a model's details are built from.
EXPAND = [
    "downloads",
    "likes",
    "pipeline_tag",
    "gated",
    "lastModified",
    "cardData",
    "tags",
    "safetensors",
    "library_name",
    "sha",
]
SORTS = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trending_score",
    "recent": "created_at",
}


class HubClient:
    def __init__(self, config: HubConfig, token: str | None, cache_dir: Path | None):
        self._endpoint = str(config.endpoint).rstrip("/") if config.endpoint else None
        self._token = token
        self._cache_dir = cache_dir
        self._api = HfApi(endpoint=self._endpoint, token=token)

    @property
    def endpoint(self) -> str:
        return self._endpoint or constants.ENDPOINT

    def search(self, *, sort: str, limit: int, **filters: Any) -> list[ModelInfo]:
        return _call(
            lambda: list(
                self._api.list_models(sort=SORTS[sort], limit=limit, expand=EXPAND, **filters)
            )
        )

    def info(self, model_id: str, revision: str | None) -> ModelInfo:
        return _call(lambda: self._api.model_info(model_id, revision=revision, expand=EXPAND))

    def config_json(self, model_id: str, revision: str | None, *, local_only: bool) -> dict:
        """config.json, downloaded into (or, with local_only, read from) the local HF cache."""

        def fetch() -> dict:
            path = hf_hub_download(
                model_id,
                "config.json",
                revision=revision,
                endpoint=self._endpoint,
                token=self._token,
                cache_dir=self._cache_dir,
                local_files_only=local_only,
            )
            try:
                config = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(f"{model_id}'s config.json is not valid JSON: {exc}") from exc
            if not isinstance(config, dict):
                raise UserError(f"{model_id}'s config.json is not a JSON object.")
            return config

        return _call(fetch, network=not local_only)


def offline() -> bool:
    return constants.is_offline_mode()


def _call(fn: Callable[[], T], *, network: bool = True) -> T:
    if network and offline():
        raise HubUnavailable("HF_HUB_OFFLINE is set", 0)
    try:
        return fn()
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, UserError):
        raise  # GatedRepoError is a RepositoryNotFoundError: the caller tells them apart
    except OfflineModeIsEnabled as exc:
        raise HubUnavailable("HF_HUB_OFFLINE is set", 0) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise HubUnavailable(f"HTTP {status} from the Hub", 1) from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise HubUnavailable(f"{type(exc).__name__} reaching the Hub", 1) from exc
    except (ValueError, TypeError, KeyError) as exc:  # a body that is not the JSON we expect
        raise HubUnavailable(f"malformed answer from the Hub ({type(exc).__name__})", 1) from exc
