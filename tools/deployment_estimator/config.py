"""configs/deployment.yaml: GPUs, Hugging Face hardware and prices, local power, memory and speed.

Every figure the estimator uses lives here with its source in the YAML; the code holds only
physical constants (bytes per value) and the formulas.
"""

from typing import Annotated, Literal, get_args

from pydantic import Field, model_validator

from tools.config_base import ConfigModel
from tools.deployment_estimator.gpu_names import read_gpu_name

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Share = Annotated[float, Field(gt=0, le=1)]
Seconds = Annotated[float, Field(gt=0, le=600)]

Method = Literal["full", "lora", "qlora"]
Optimizer = Literal[
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "adafactor",
    "sgd",
]
OPTIMIZER_NAMES: tuple[str, ...] = get_args(Optimizer)


class Gpu(ConfigModel):
    memory_gb: Positive = Field(description="Memory as sold (binary GB, as nvidia-smi counts).")
    bf16_tflops: Positive = Field(description="Dense tensor TFLOPS, bf16 (fp16 where no bf16).")
    bandwidth_gb_s: Positive
    tdp_w: Positive
    bf16: bool
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names (lower case) it goes by, e.g. in nvidia-smi or the Hub's list.",
    )


class Flavor(ConfigModel):
    """A Hugging Face Spaces / Jobs hardware flavor."""

    gpu: str
    gpu_count: Annotated[int, Field(ge=1)]
    vcpu: Annotated[int, Field(ge=1)]
    ram_gb: Positive
    usd_per_hour: Positive
    jobs_only: bool = False


class LivePricesConfig(ConfigModel):
    """The Hub's live hardware list (HfApi.list_jobs_hardware); the YAML prices are the fallback."""

    enabled: bool
    timeout_s: Seconds
    cache_ttl_s: Positive
    fallback_source: str = Field(description="Where the YAML prices were read, for the notes.")


class LocalConfig(ConfigModel):
    gpu: str | None = Field(default=None, description="None: detect with nvidia-smi.")
    gpu_count: Annotated[int, Field(ge=1)] = 1
    detect: bool = Field(description="Ask nvidia-smi when `gpu` is not set.")
    detect_timeout_s: Seconds
    electricity_usd_per_kwh: NonNegative
    utilisation: Share
    pue: Annotated[float, Field(ge=1)]


class MemoryConfig(ConfigModel):
    usable_fraction: Share = Field(description="Share of the sold memory a process can allocate.")
    cuda_context_gb: NonNegative
    allocator_overhead: NonNegative = Field(
        description="PyTorch caching-allocator reserve and fragmentation, as a share of tensors."
    )
    logits_bytes_per_value: Positive = Field(
        description="Bytes per (token, vocabulary entry) alive while the loss is backpropagated."
    )
    chunked_nll_bytes_per_value: Positive = Field(
        description="Bytes per (chunk token, vocabulary entry) of TRL's chunked_nll loss."
    )
    chunked_nll_chunk_tokens: Annotated[int, Field(ge=1)] = Field(
        description="Label tokens per chunk of TRL's chunked_nll loss."
    )
    preference_logits_bytes_per_value: Positive = Field(
        description="Bytes per logit value of TRL's DPO/KTO log-probs (selective_log_softmax)."
    )
    norm_saved_bytes: Positive = Field(
        description="Bytes per hidden value an RMSNorm keeps for backward (its fp32 upcast)."
    )
    adapter_bytes: Positive = Field(description="Bytes per LoRA weight (PEFT upcasts to fp32).")
    nf4_bits_per_param: Positive = Field(description="4-bit NF4 storage with its scales.")
    nf4_double_quant_bits_per_param: Positive = Field(description="The same, scales quantised.")


class OptimizerState(ConfigModel):
    states: Annotated[int, Field(ge=0)] = Field(description="State tensors per trainable weight.")
    state_bytes: Positive | None = Field(
        default=None, description="Bytes per state value; None: the trainable weight's dtype."
    )
    paged: bool = False


class EfficiencyConfig(ConfigModel):
    mfu: dict[Method, Share] = Field(
        description="Share of peak the matmuls reach on micro-batches large enough to saturate."
    )
    launch_latency_us: Positive = Field(
        description="Fixed microseconds per h^2 matmul FLOPs of one token's work in a micro-batch."
    )
    elementwise_bytes: Positive = Field(
        description="Bytes the elementwise ops move per matmul FLOP, times the hidden size."
    )
    memory_bound_efficiency: Share = Field(
        description="Share of peak bandwidth the optimizer step's elementwise kernels reach."
    )
    data_parallel_efficiency: Share

    @model_validator(mode="after")
    def _every_method(self) -> "EfficiencyConfig":
        missing = sorted({"full", "lora", "qlora"} - set(self.mfu))
        if missing:
            raise ValueError(f"mfu needs a value for: {', '.join(missing)}")
        return self


class Overheads(ConfigModel):
    startup_minutes: NonNegative
    download_minutes_per_gb: NonNegative


class SuggestionsConfig(ConfigModel):
    min_seq_length: Annotated[int, Field(ge=16)] = Field(
        description="Shorter sequences than this are never suggested."
    )


class DeploymentConfig(ConfigModel):
    gpus: dict[str, Gpu]
    flavors: dict[str, Flavor]
    live_prices: LivePricesConfig
    local: LocalConfig
    memory: MemoryConfig
    optimizers: dict[str, OptimizerState]
    efficiency: EfficiencyConfig
    overheads: Overheads
    suggestions: SuggestionsConfig
    default_budget_usd: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _references_known(self) -> "DeploymentConfig":
        local = self.local.gpu and read_gpu_name(self.local.gpu, self.gpus, self.flavors)[0]
        if local and local != self.local.gpu:  # any name or alias the tools take, held as its key
            gpu = self.local.model_copy(update={"gpu": local})
            return self.model_copy(update={"local": gpu})._references_known()
        used = {f.gpu for f in self.flavors.values()} | ({self.local.gpu} - {None})
        unknown = sorted(used - set(self.gpus))
        if unknown:
            raise ValueError(f"these GPUs are used but not in `gpus`: {', '.join(unknown)}")
        missing = sorted(set(OPTIMIZER_NAMES) - set(self.optimizers))
        if missing:
            raise ValueError(f"`optimizers` needs an entry for: {', '.join(missing)}")
        return self
