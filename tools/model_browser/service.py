"""Step 1's service: search the Hub for base models and fetch the details of the chosen one.

Blocking (it talks HTTP through huggingface_hub): the MCP layer runs it in a worker thread.
When the Hub cannot be reached it degrades instead of failing: a cached answer (marked stale
when past its TTL), else the curated popular models plus what the local Hugging Face cache holds.
"""

import contextlib
import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from huggingface_hub import scan_cache_dir
from huggingface_hub.errors import (
    CacheNotFound,
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import ModelInfo
from pydantic import BaseModel, Field

from tools.errors import UserError
from tools.hub_http import HubUnavailable, time_budget
from tools.model_browser.architecture import architecture_from_config, count_parameters
from tools.model_browser.cache import SearchCache
from tools.model_browser.config import Architecture, ModelsConfig, PopularModel, SearchConfig
from tools.model_browser.hub import HubClient
from tools.model_browser.results import ModelDetails, ModelSummary, SearchResult

BYTES_PER_BF16 = 2
TEXT_GENERATION = "text-generation"
_CLOSEST_MATCHES = 5


class SearchRequest(BaseModel):
    query: str = ""
    task: str | None = None
    author: str | None = None
    library: str | None = None
    sort: Literal["downloads", "likes", "trending", "recent"] = "downloads"
    max_params_b: Annotated[float, Field(gt=0)] | None = None
    min_downloads: Annotated[int, Field(ge=0)] | None = None
    min_likes: Annotated[int, Field(ge=0)] | None = None
    limit: Annotated[int, Field(ge=1)] | None = None


class ModelBrowser:
    def __init__(
        self,
        config: ModelsConfig,
        *,
        search_cache_path: Path,
        token: str | None = None,
        hf_cache_dir: Path | None = None,
    ):
        self.config = config
        self._hub = HubClient(config.hub, token, hf_cache_dir)
        self._hf_cache_dir = hf_cache_dir
        self._cache = SearchCache(config.cache, search_cache_path)
        self._popular = {m.id.lower(): m for m in config.popular}

    def known_model_ids(self) -> list[str]:
        """Recently seen ids (from cached searches), then the curated ones: for completions."""
        return list(dict.fromkeys([*self._cache.model_ids(), *(m.id for m in self.config.popular)]))

    def known(self, model_id: str) -> ModelSummary | None:
        """What this server knows of a model without asking the Hub: catalog, then cache."""
        if popular := self._popular.get(model_id.lower()):
            return self._popular_summary(popular)
        return self._cache.summary(model_id)

    # --- search ---------------------------------------------------------------------------

    def answer_at_once(self, request: SearchRequest) -> SearchResult | None:
        """The answer when it needs no I/O (curated list, fresh cache), else None.

        Cheap and non-blocking, so the MCP layer tries it on the event loop before sending a
        search to a worker thread.
        """
        return self._at_hand(
            _Query.of(request, self.config.search, self._tasks(request.task)), request
        )

    def _at_hand(self, query: "_Query", request: SearchRequest) -> SearchResult | None:
        if query.curated:
            models = [self._popular_summary(m) for m in self.config.popular]
            picked = self._narrow(models, query.tasks, request.max_params_b, (0, 0), query.limit)
            return SearchResult(models=picked, source="popular", stale=False, notice=query.notice)
        if hit := self._cache.fresh(query.key):
            return SearchResult(models=hit.models, source="cache", stale=False, notice=query.notice)
        return None

    def search(self, request: SearchRequest) -> SearchResult:
        """Blocking: the Hub when no answer is at hand, degrading as the module says."""
        query = _Query.of(request, self.config.search, self._tasks(request.task))
        if (answer := self._at_hand(query, request)) is not None:
            return answer
        with time_budget(self.config.hub.retries.total_timeout_s):
            try:
                infos = self._hub.search(
                    search=query.text or None,
                    author=request.author,
                    pipeline_tag=request.task,
                    filter=request.library,
                    sort=request.sort,
                    limit=self.config.search.fetch_limit,
                )
            except HubUnavailable as exc:
                return self._fallback(query, request, exc)
        models = self._narrow(
            [self._summary(i) for i in infos],
            query.tasks,
            request.max_params_b,
            query.floors,
            query.limit,
        )
        self._cache.put(query.key, models)
        return SearchResult(models=models, source="hub", stale=False, notice=query.notice)

    def _tasks(self, task: str | None) -> set[str]:
        allowed = self.config.search.allowed_tasks
        if task is None:
            return set(allowed)
        if task not in allowed:
            raise UserError(
                f"Task {task!r} is not offered here; choose one of: {', '.join(allowed)}."
            )
        return {task}

    def _narrow(
        self,
        models: list[ModelSummary],
        tasks: set[str],
        max_params_b: float | None,
        floors: tuple[int, int],
        limit: int,
    ) -> list[ModelSummary]:
        min_downloads, min_likes = floors
        kept = [
            m
            for m in models
            if (m.pipeline_tag in tasks)
            and (max_params_b is None or (m.params_b is not None and m.params_b <= max_params_b))
            and (m.downloads or 0) >= min_downloads
            and (m.likes or 0) >= min_likes
        ]
        return kept[:limit]

    def _fallback(
        self, query: "_Query", request: SearchRequest, error: HubUnavailable
    ) -> SearchResult:
        notices = list(query.notices)
        if cached := self._cache.any(query.key):
            entry, age_s, stale = cached
            notices.insert(
                0,
                f"The Hub is unreachable ({error.reason}); these results are from "
                f"{age_s / 60:.0f} minutes ago.",
            )
            return SearchResult(
                models=entry.models, source="cache", stale=stale, notice=_join(notices)
            )
        candidates = [self._popular_summary(m) for m in self.config.popular]
        known = {m.id.lower() for m in candidates}
        candidates += [m for m in self._local_models() if m.id.lower() not in known]
        words = query.text.lower().split()
        matching = [
            m
            for m in candidates
            if all(w in m.id.lower() for w in words)
            and (not request.author or m.id.split("/")[0].lower() == request.author.lower())
        ]
        picked = self._narrow(matching, query.tasks, request.max_params_b, (0, 0), query.limit)
        notices.insert(
            0,
            f"The Hub is unreachable ({error.reason}); showing {len(picked)} matching models "
            "from the curated list and your local Hugging Face cache.",
        )
        return SearchResult(models=picked, source="offline", stale=False, notice=_join(notices))

    # --- details --------------------------------------------------------------------------

    def details(self, model_id: str, revision: str | None = None) -> ModelDetails:
        with time_budget(self.config.hub.retries.total_timeout_s):
            return self._details(model_id.strip(), revision)

    def _details(self, model_id: str, revision: str | None) -> ModelDetails:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", model_id):
            raise UserError(
                f"{model_id!r} is not a Hub model id; use the form owner/name, "
                "e.g. Qwen/Qwen2.5-0.5B-Instruct."
            )
        try:
            info = self._hub.info(model_id, revision)
        except RevisionNotFoundError as exc:
            raise UserError(
                f"{model_id} has no revision {revision!r}; leave revision empty for the latest."
            ) from exc
        except RepositoryNotFoundError as exc:
            raise UserError(self._not_found_message(model_id)) from exc
        except HubUnavailable as exc:
            return self._offline_details(model_id, revision, exc)
        return self._hub_details(info, revision)

    def _hub_details(self, info: ModelInfo, revision: str | None) -> ModelDetails:
        model_id = info.id
        gated = _is_gated(info)
        popular = self._popular.get(model_id.lower())
        try:
            config = self._hub.config_json(model_id, revision, local_only=False)
            arch = architecture_from_config(config)
        except GatedRepoError as exc:
            if popular is None:
                raise UserError(
                    f"{model_id} is gated and this server's token has no access yet. "
                    f"{_gated_action(model_id)} Then select it again."
                ) from exc
            arch = popular.architecture
        except EntryNotFoundError as exc:
            raise UserError(
                f"{model_id} has no config.json, so it is not a transformers model this wizard "
                "can train. Choose another model."
            ) from exc
        except HubUnavailable as exc:
            return self._offline_details(model_id, revision, exc)
        total = info.safetensors.total if info.safetensors else None
        params, params_source = (
            (total, "safetensors") if total else (count_parameters(arch), "config")
        )
        return self._assemble(
            model_id,
            revision=info.sha or revision,
            params=params,
            params_source=params_source,
            arch=arch,
            license=_license(info),
            gated=gated,
            pipeline_tag=info.pipeline_tag,
            source="hub",
            extra=[],
        )

    def _offline_details(
        self, model_id: str, revision: str | None, error: HubUnavailable
    ) -> ModelDetails:
        note = f"The Hub is unreachable ({error.reason}); details come from "
        if popular := self._popular.get(model_id.lower()):
            return self._assemble(
                popular.id,
                revision=revision,
                params=popular.params,
                params_source="catalog",
                arch=popular.architecture,
                license=popular.license,
                gated=popular.gated,
                pipeline_tag=popular.pipeline_tag,
                source="offline",
                extra=[note + "the curated catalog."],
            )
        try:
            config = self._hub.config_json(model_id, revision, local_only=True)
        except (EntryNotFoundError, HubUnavailable, OSError) as exc:
            raise UserError(
                f"The Hub is unreachable ({error.reason}) and {model_id} is neither in the "
                "curated list nor in your local Hugging Face cache. Try again when online, or "
                f"pick one of: {', '.join(m.id for m in self.config.popular[:_CLOSEST_MATCHES])}."
            ) from exc
        arch = architecture_from_config(config)
        return self._assemble(
            model_id,
            revision=revision,
            params=count_parameters(arch),
            params_source="config",
            arch=arch,
            license=None,
            gated=False,
            pipeline_tag=None,
            source="offline",
            extra=[note + "your local Hugging Face cache; licence and gating are unknown."],
        )

    def _assemble(
        self,
        model_id: str,
        *,
        revision: str | None,
        params: int,
        params_source: Literal["safetensors", "config", "catalog"],
        arch: Architecture,
        license: str | None,
        gated: bool,
        pipeline_tag: str | None,
        source: Literal["hub", "offline"],
        extra: list[str],
    ) -> ModelDetails:
        params_b = params / 1e9
        warnings = [*extra, *self._warnings(params_b, gated, pipeline_tag, model_id)]
        if params_source == "config":
            warnings.append(
                "No safetensors metadata: the parameter count is computed from config.json."
            )
        return ModelDetails(
            model_id=model_id,
            revision=revision,
            params=params,
            params_b=round(params_b, 3),
            params_source=params_source,
            architecture=arch,
            context_length=arch.context_length,
            license=license,
            gated=gated,
            gated_action=_gated_action(model_id) if gated else None,
            pipeline_tag=pipeline_tag,
            size_gb=round(params * BYTES_PER_BF16 / 1e9, 2),
            source=source,
            warnings=warnings,
        )

    def _warnings(
        self, params_b: float | None, gated: bool, pipeline_tag: str | None, model_id: str
    ) -> list[str]:
        warnings = []
        threshold = self.config.search.size_warning_params_b
        if params_b is not None and params_b > threshold:
            warnings.append(
                f"{params_b:.1f}B parameters (over {threshold:g}B): LoRA needs a large GPU; "
                "consider QLoRA."
            )
        if gated:
            warnings.append(f"Gated: {_gated_action(model_id)}")
        if pipeline_tag and pipeline_tag != TEXT_GENERATION:
            warnings.append(
                f"Its task is {pipeline_tag}, not text-generation: check it can be fine-tuned "
                "as a causal language model."
            )
        return warnings

    def _not_found_message(self, model_id: str) -> str:
        name = model_id.split("/")[-1]
        candidates = [m.id for m in self.config.popular]
        with contextlib.suppress(HubUnavailable, RepositoryNotFoundError):
            candidates += [
                i.id
                for i in self._hub.search(
                    search=name, sort="downloads", limit=self.config.search.default_limit
                )
            ]
        closest = difflib.get_close_matches(model_id, candidates, n=_CLOSEST_MATCHES, cutoff=0.3)
        hint = f" Closest matches: {', '.join(closest)}." if closest else ""
        return f"There is no model {model_id!r} on the Hub.{hint}"

    # --- summaries ------------------------------------------------------------------------

    def _summary(self, info: ModelInfo) -> ModelSummary:
        params = info.safetensors.total if info.safetensors else None
        params_b = round(params / 1e9, 3) if params else None
        gated = _is_gated(info)
        warnings = self._warnings(params_b, gated, None, info.id)
        if params is None:
            warnings.append("No safetensors metadata: size unknown until selected.")
        return ModelSummary(
            id=info.id,
            params_b=params_b,
            downloads=info.downloads,
            likes=info.likes,
            pipeline_tag=info.pipeline_tag,
            license=_license(info),
            gated=gated,
            size_gb=round(params * BYTES_PER_BF16 / 1e9, 2) if params else None,
            last_modified=info.last_modified,
            warnings=warnings,
        )

    def _popular_summary(self, model: PopularModel) -> ModelSummary:
        params_b = round(model.params / 1e9, 3)
        return ModelSummary(
            id=model.id,
            params_b=params_b,
            pipeline_tag=model.pipeline_tag,
            license=model.license,
            gated=model.gated,
            size_gb=round(model.params * BYTES_PER_BF16 / 1e9, 2),
            warnings=self._warnings(params_b, model.gated, None, model.id),
        )

    def _local_models(self) -> list[ModelSummary]:
        """Models in the local Hugging Face cache that have a readable config.json."""
        try:
            repos = scan_cache_dir(self._hf_cache_dir).repos
        except (CacheNotFound, OSError):
            return []
        found = []
        for repo in sorted(repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            for revision in repo.revisions:
                config_path = revision.snapshot_path / "config.json"
                try:
                    arch = architecture_from_config(json.loads(config_path.read_text("utf-8")))
                except (OSError, ValueError, UserError):
                    continue
                params = count_parameters(arch)
                found.append(
                    ModelSummary(
                        id=repo.repo_id,
                        params_b=round(params / 1e9, 3),
                        pipeline_tag=TEXT_GENERATION,
                        size_gb=round(params * BYTES_PER_BF16 / 1e9, 2),
                        warnings=["From your local Hugging Face cache."],
                    )
                )
                break
        return found


@dataclass(frozen=True)
class _Query:
    """A search request with the configured caps and floors applied."""

    text: str
    limit: int
    tasks: set[str]
    floors: tuple[int, int]
    notices: tuple[str, ...]
    curated: bool
    key: str

    @classmethod
    def of(cls, request: SearchRequest, limits: SearchConfig, tasks: set[str]) -> "_Query":
        notices = []
        limit = request.limit or limits.default_limit
        if limit > limits.max_limit:
            notices.append(f"Showing at most {limits.max_limit} models (the configured cap).")
            limit = limits.max_limit
        text = " ".join(request.query.split())
        return cls(
            text=text,
            limit=limit,
            tasks=tasks,
            floors=(
                max(limits.min_downloads, request.min_downloads or 0),
                max(limits.min_likes, request.min_likes or 0),
            ),
            notices=tuple(notices),
            curated=not text and not request.author and not request.library,
            key=_cache_key(request, text, limit),
        )

    @property
    def notice(self) -> str | None:
        return _join(list(self.notices))


def _cache_key(request: SearchRequest, query: str, limit: int) -> str:
    fields = request.model_dump(exclude={"query", "limit"})
    fields["author"] = (request.author or "").lower() or None
    return json.dumps({**fields, "query": query.lower(), "limit": limit}, sort_keys=True)


def _is_gated(info: ModelInfo) -> bool:
    return info.gated not in (None, False)


def _gated_action(model_id: str) -> str:
    return (
        f"accept its licence at https://huggingface.co/{model_id} with your account and set "
        "HF_TOKEN for this server."
    )


def _license(info: ModelInfo) -> str | None:
    card_license = getattr(info.card_data, "license", None) if info.card_data else None
    if isinstance(card_license, str):
        return card_license
    for tag in info.tags or []:
        if tag.startswith("license:"):
            return tag.removeprefix("license:")
    return None


def _join(notices: list[str]) -> str | None:
    return " ".join(notices) or None
