"""Current Hugging Face hardware prices from the Hub (GET /api/jobs/hardware).

The YAML list is the fallback: flavors the Hub lists get its price, the rest keep theirs. The
call is blocking (huggingface_hub's HTTP client); the server runs it in a worker thread with a
timeout and caches the answer.
"""

from dataclasses import dataclass

from tools.deployment_estimator.config import DeploymentConfig

MINUTES_PER_HOUR = 60
MICRO = 1e-6


@dataclass(frozen=True)
class LivePrice:
    flavor: str
    usd_per_hour: float


def fetch_live_prices(endpoint: str | None, token: str | None) -> list[LivePrice]:
    """Every GPU flavor the Hub lists, with its hourly price; raises on any HTTP failure."""
    from huggingface_hub import HfApi  # on first use: hf_api adds ~60 ms to a start-up

    prices = []
    for hardware in HfApi(endpoint=endpoint, token=token).list_jobs_hardware():
        if hardware.accelerator is None or hardware.unit_label != "minute":
            continue
        hourly = hardware.unit_cost_micro_usd * MICRO * MINUTES_PER_HOUR
        prices.append(LivePrice(hardware.name, round(hourly, 2)))
    return prices


def with_live_prices(config: DeploymentConfig, live: list[LivePrice]) -> DeploymentConfig:
    """`config` with the Hub's price for each flavor it lists; the others keep the YAML price."""
    by_id = {p.flavor: p.usd_per_hour for p in live}
    flavors = {
        fid: flavor.model_copy(update={"usd_per_hour": by_id[fid]}) if fid in by_id else flavor
        for fid, flavor in config.flavors.items()
    }
    return config.model_copy(update={"flavors": flavors})
