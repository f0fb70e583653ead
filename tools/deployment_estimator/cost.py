"""What a run costs: Hugging Face hardware by the minute, or the electricity of the user's GPU."""

import math
from dataclasses import dataclass

from tools.deployment_estimator.config import DeploymentConfig, Gpu

MINUTES_PER_HOUR = 60
WATTS_PER_KW = 1000
CENT_DIGITS = 2  # money is shown, compared with the budget and set as a budget to the cent


@dataclass(frozen=True)
class Cost:
    hours: float  # wall clock, start-up and download included for the cloud
    usd: float
    energy_kwh: float | None = None


def to_cents(usd: float) -> float:
    """The amount as the user reads it: a budget of that figure covers it."""
    return round(usd, CENT_DIGITS)


def cloud_setup_minutes(model_size_gb: float, config: DeploymentConfig) -> float:
    """What a cloud machine spends before training: start-up and the model's download."""
    overheads = config.overheads
    return overheads.startup_minutes + overheads.download_minutes_per_gb * model_size_gb


def cloud_cost(
    training_hours: float, usd_per_hour: float, model_size_gb: float, config: DeploymentConfig
) -> Cost:
    """Jobs and Spaces bill every started minute (hub-docs jobs-pricing.md) while the machine
    starts, downloads the model and trains: ceil(start-up + download + training minutes)."""
    minutes = cloud_setup_minutes(model_size_gb, config) + training_hours * MINUTES_PER_HOUR
    billed = math.ceil(minutes)
    return Cost(hours=minutes / MINUTES_PER_HOUR, usd=billed * usd_per_hour / MINUTES_PER_HOUR)


def local_cost(training_hours: float, gpu: Gpu, gpu_count: int, config: DeploymentConfig) -> Cost:
    """Electricity: GPUs x TDP x utilisation x PUE x hours, at the configured price per kWh.

    The rest of the machine (CPU, disks) and the purchase price are left out."""
    local = config.local
    kw = gpu_count * gpu.tdp_w * local.utilisation * local.pue / WATTS_PER_KW
    kwh = kw * training_hours
    return Cost(hours=training_hours, usd=kwh * local.electricity_usd_per_kwh, energy_kwh=kwh)
