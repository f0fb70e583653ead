"""Estimates already made, by what they were made from.

An estimate is a pure function of the run, the targets, the budget and the deployment config.
A conversation asks for the same one several times (a first look, then `select` with the draft,
then again after finalize_package reports it stale), and a team's members ask for the same
model, template and data. The memo answers those from memory: bounded, least recently used
first out, and emptied when the config object changes (the Hub's live prices replace it).
Targets are keyed by kind and id, which name them within one config and one local machine: a
caller whose local machine changes starts a new memo.
"""

from collections.abc import Iterable

from cachetools import LRUCache

from tools.deployment_estimator.catalog import Target
from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.estimator import Workload, estimate
from tools.deployment_estimator.results import DeploymentEstimate


class EstimateMemo:
    """`estimate`, remembered. Its results are shared: callers must not change them (they are
    frozen models; copy with changes instead)."""

    def __init__(self, max_entries: int) -> None:
        self._made: LRUCache[tuple, DeploymentEstimate] = LRUCache(max_entries)
        self._config: DeploymentConfig | None = None

    def estimate(
        self,
        work: Workload,
        targets: list[Target],
        budget_usd: float,
        config: DeploymentConfig,
        *,
        alternatives: list[Target],
        default_lora_r: int,
        prices: str,
    ) -> DeploymentEstimate:
        if config is not self._config:  # figures from another config would be wrong
            self._made.clear()
            self._config = config
        key = (work, _names(targets), budget_usd, _names(alternatives), default_lora_r, prices)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = estimate(
                work,
                targets,
                budget_usd,
                config,
                alternatives=alternatives,
                default_lora_r=default_lora_r,
                prices=prices,
            )
        return made

    def __len__(self) -> int:
        return len(self._made)


def _names(targets: Iterable[Target]) -> tuple[tuple[str, str], ...]:
    return tuple((t.kind, t.id) for t in targets)
