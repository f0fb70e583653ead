"""configs/deployment.yaml: GPUs, Hugging Face hardware and prices, local power, efficiency."""

from typing import Annotated

from pydantic import Field, model_validator

from tools.config_base import ConfigModel

Positive = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(gt=0, le=1)]


class Gpu(ConfigModel):
    memory_gb: Positive
    bf16_tflops: Positive = Field(description="Dense tensor TFLOPS, bf16 (fp16 where no bf16).")
    bandwidth_gb_s: Positive
    tdp_w: Positive
    bf16: bool


class Flavor(ConfigModel):
    """A Hugging Face Spaces / Jobs hardware flavor."""

    gpu: str
    gpu_count: Annotated[int, Field(ge=1)]
    vcpu: Annotated[int, Field(ge=1)]
    ram_gb: Positive
    usd_per_hour: Positive
    jobs_only: bool = False


class LocalConfig(ConfigModel):
    gpu: str | None = Field(default=None, description="None: detect with nvidia-smi.")
    gpu_count: Annotated[int, Field(ge=1)] = 1
    electricity_usd_per_kwh: Annotated[float, Field(ge=0)]
    utilisation: Share
    pue: Annotated[float, Field(ge=1)]


class Overheads(ConfigModel):
    startup_minutes: Annotated[float, Field(ge=0)]
    download_minutes_per_gb: Annotated[float, Field(ge=0)]


class DeploymentConfig(ConfigModel):
    gpus: dict[str, Gpu]
    flavors: dict[str, Flavor]
    local: LocalConfig
    efficiency: dict[str, Share] = Field(description="Model FLOPs utilisation per method.")
    overheads: Overheads
    default_budget_usd: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _gpus_known(self) -> "DeploymentConfig":
        used = {f.gpu for f in self.flavors.values()} | ({self.local.gpu} - {None})
        unknown = sorted(used - set(self.gpus))
        if unknown:
            raise ValueError(f"these GPUs are used but not in `gpus`: {', '.join(unknown)}")
        return self
