"""What is slow to learn about the hardware, learnt once per server and kept.

The local GPU (nvidia-smi, once, unless refreshed) and the Hub's live prices (kept for
live_prices.cache_ttl_s, the YAML prices standing in when the Hub does not answer within
live_prices.timeout_s). Both block: call from a worker thread.
"""

import threading
import time
from collections.abc import Callable
from typing import Any

from huggingface_hub import is_offline_mode
from huggingface_hub.errors import HTTPError

from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.gpu_names import match_gpu
from tools.deployment_estimator.live_prices import fetch_live_prices, with_live_prices
from tools.deployment_estimator.local_gpu import LocalHardware, local_hardware, query_nvidia_smi
from tools.errors import NotFoundError
from tools.hub_http import HubUnavailable, time_budget

# What a failed price fetch may raise: the Hub unreachable or refusing, its answer malformed.
# The YAML prices stand in either way.
PRICE_FETCH_ERRORS = (HubUnavailable, HTTPError, OSError, ValueError, KeyError, TypeError)


class HardwareFacts:
    """The local machine and the priced deployment config, kept between calls."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._local: LocalHardware | None = None
        # (the config priced, when, the priced config)
        self._priced: tuple[DeploymentConfig, float, DeploymentConfig] | None = None

    def local(self, config: DeploymentConfig, refresh: bool = False) -> LocalHardware:
        """The configured GPU, else the detected one (nvidia-smi, bounded by a timeout)."""
        with self._lock:
            if self._local is None or refresh:
                detected: list[str] = []
                if config.local.gpu is None and config.local.detect:
                    detected = query_nvidia_smi(config.local.detect_timeout_s)
                self._local = local_hardware(config, detected)
            return self._local

    def priced(
        self,
        config: DeploymentConfig,
        endpoint: str | None,
        token: str | None,
        refresh: bool = False,
    ) -> tuple[DeploymentConfig, str]:
        """`config` with the Hub's live prices where it gave them, and a note saying which
        prices these are. The same priced config comes back until the cache expires."""
        live = config.live_prices
        fallback = f"prices: {live.fallback_source}"
        if not live.enabled:
            return config, fallback
        if is_offline_mode():
            return config, f"{fallback}; HF_HUB_OFFLINE is set"
        with self._lock:
            kept = self._priced
            stale = (
                kept is None
                or refresh
                or kept[0] is not config
                or self._clock() - kept[1] >= live.cache_ttl_s
            )
            if stale:
                try:
                    with time_budget(live.timeout_s):
                        prices = fetch_live_prices(endpoint, token)
                except PRICE_FETCH_ERRORS:
                    return config, f"{fallback}; the Hub's live list did not answer"
                kept = self._priced = (config, self._clock(), with_live_prices(config, prices))
            assert kept is not None
            return kept[2], "prices: the Hub's live hardware list"

    def facts(
        self,
        config: DeploymentConfig,
        endpoint: str | None,
        token: str | None,
        refresh: bool = False,
    ) -> tuple[DeploymentConfig, str, LocalHardware]:
        """priced() and local() together: the priced config, its note, the local machine."""
        priced, prices = self.priced(config, endpoint, token, refresh)
        return priced, prices, self.local(priced, refresh)


def describe_catalog(config: DeploymentConfig, prices: str, local: LocalHardware) -> dict[str, Any]:
    """package://hardware: the flavors with their prices, the GPUs, the local machine."""
    return {
        "prices": prices,
        "flavors": {k: v.model_dump() for k, v in config.flavors.items()},
        "gpus": {k: v.model_dump(exclude={"aliases"}) for k, v in config.gpus.items()},
        "local": {
            "gpu": local.target.gpu if local.target else None,
            "gpu_count": local.target.gpu_count if local.target else 0,
            "note": local.note,
            **config.local.model_dump(include={"electricity_usd_per_kwh", "pue"}),
        },
        "overheads": config.overheads.model_dump(),
    }


def describe_hardware(config: DeploymentConfig, hardware_id: str) -> dict[str, Any]:
    """package://hardware/{id}: a flavor (spec and hourly price) or a GPU's spec, by id or any
    name nvidia-smi or a user gives it; NotFoundError otherwise."""
    if flavor := config.flavors.get(hardware_id):
        gpu = config.gpus[flavor.gpu]
        return {
            "flavor": hardware_id,
            **flavor.model_dump(),
            "gpu_spec": gpu.model_dump(exclude={"aliases"}),
        }
    if gpu_key := match_gpu(hardware_id, config.gpus):
        return {"gpu": gpu_key, **config.gpus[gpu_key].model_dump(exclude={"aliases"})}
    raise NotFoundError(
        "No hardware flavor or GPU goes by that id; read package://hardware for the flavors "
        "and GPUs."
    )
