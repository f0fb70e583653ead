"""Estimates already made, by what they were asked from.

An estimate is a pure function of the request (the draft's earlier steps and the caller's
arguments) and the server's deployment config, templates and local machine. A conversation
asks for the same one several times (a first look, then `select` with the draft), and a team's
members for the same model, template and data. The memo answers those from memory: keyed by
the request's canonical JSON (cheap to hash and compare, and it skips building the run as well
as estimating it), bounded, least recently used first out, and emptied when the config or the
local machine changes (the Hub's live prices replace the config; a refresh re-detects the GPU).
"""

from dataclasses import dataclass, field
from typing import Any

import orjson
from cachetools import LRUCache

from tools.deployment_estimator.catalog import Target, resolve_targets
from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.estimator import estimate
from tools.deployment_estimator.inputs import DraftSections, build_workload, default_lora_r
from tools.deployment_estimator.results import DeploymentEstimate
from tools.template_loader.config import TemplatesConfig


@dataclass(frozen=True)
class EstimateRequest:
    """What an estimate is made from, as the caller gave it (see inputs.build_workload)."""

    budget_usd: float
    sections: DraftSections = field(default_factory=DraftSections)
    model_config: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    train_tokens: int | None = None
    targets: list[str] | None = None  # None: the local machine and every flavor


class EstimateMemo:
    """Estimates of requests, remembered. Its results are shared: callers must not change them
    (they are frozen models; copy with changes instead)."""

    def __init__(self, max_entries: int) -> None:
        self._made: LRUCache[bytes, DeploymentEstimate] = LRUCache(max_entries)
        self._for: tuple[DeploymentConfig, Target | None] | None = None

    def estimate(
        self,
        request: EstimateRequest,
        *,
        config: DeploymentConfig,
        templates: TemplatesConfig,
        local: Target | None,
        prices: str,
    ) -> DeploymentEstimate:
        """The estimate of `request`; UserError when its inputs cannot be estimated."""
        if self._for is None or self._for[0] is not config or self._for[1] is not local:
            self._made.clear()  # figures from another config or machine would be wrong
            self._for = (config, local)
        try:
            key = orjson.dumps((request, prices), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # e.g. an integer past 64 bits: estimate, unremembered
            return _estimate(request, config, templates, local, prices)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = _estimate(request, config, templates, local, prices)
        return made

    def __len__(self) -> int:
        return len(self._made)


def _estimate(
    request: EstimateRequest,
    config: DeploymentConfig,
    templates: TemplatesConfig,
    local: Target | None,
    prices: str,
) -> DeploymentEstimate:
    work = build_workload(
        request.sections,
        model_config=request.model_config,
        training=request.training,
        train_tokens=request.train_tokens,
        templates=templates,
    )
    everywhere = resolve_targets(None, config, local)
    return estimate(
        work,
        resolve_targets(request.targets, config, local) if request.targets else everywhere,
        request.budget_usd,
        config,
        alternatives=everywhere,
        default_lora_r=default_lora_r(templates),
        prices=prices,
    )
