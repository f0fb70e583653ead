"""The run a package's train.py makes, beyond the template's keys: one description that the
exporter writes into trl.yaml and the deployment estimator reads, so the two cannot drift.

It holds what the pinned TRL decides that moves memory and time - the weights' dtype, the SFT
loss implementation, packing, DPO/KTO's reference log-probs - and how often it logs (train.py's
progress lines), with each default chosen and explained in configs/package.yaml (section `run`).
"""

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from tools.config_base import ConfigModel

Dtype = Literal["float32", "bfloat16", "float16"]
DTYPE_BYTES: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2}
SftLoss = Literal["nll", "chunked_nll"]


class TrainerRun(ConfigModel):
    """configs/package.yaml `run`: the trainer settings the package pins and the estimate uses."""

    trl_version: str = Field(description="The TRL these were read from (requirements' pin).")
    full_weights_dtype: Literal["float32", "bfloat16"] = Field(
        description="model_init_kwargs.dtype of full fine-tuning (master weights)."
    )
    sft_loss_type: SftLoss = Field(description="SFTConfig.loss_type.")
    packing: bool = Field(description="SFTConfig.packing: sequences filled to max_length.")
    padding_free: bool = Field(description="SFTConfig.padding_free.")
    precompute_ref_log_probs: bool = Field(
        description="DPO/KTO: reference log-probs computed once before training."
    )
    full_reference_in_compute_dtype: bool = Field(
        description="DPO/KTO full fine-tuning: the frozen reference copy loads in the compute "
        "dtype (train.py passes it as ref_model), not like the trained model (TRL's own copy)."
    )
    logging_steps: Annotated[float, Field(gt=0)] = Field(
        description="A log (and train.py's progress line) every this many optimizer steps; "
        "below 1, a fraction of them."
    )

    @field_validator("padding_free")
    @classmethod
    def _padded(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "padding_free needs flash attention, which the package does not install, and "
                "the estimate does not model it: keep it false"
            )
        return value

    @field_validator("logging_steps")
    @classmethod
    def _whole_or_fraction(cls, value: float) -> float:
        if value > 1 and not value.is_integer():
            raise ValueError("logging_steps is a whole number of steps, or a fraction below 1")
        return value

    def weights_dtype(self, adapter: str, bf16: bool, fp16: bool) -> Dtype:
        """The dtype the model loads in: full fine-tuning's master weights, else (a frozen
        16-bit or 4-bit base) the compute dtype."""
        return self.full_weights_dtype if adapter == "none" else compute_dtype(bf16, fp16)

    def reference_in_compute_dtype(self, method: str, adapter: str) -> bool:
        """Whether train.py loads the run's reference copy itself, in the compute dtype: DPO/KTO
        full fine-tuning without precomputed log-probs (LoRA's reference is its own base)."""
        return (
            self.full_reference_in_compute_dtype
            and method != "sft"
            and adapter == "none"
            and not self.precompute_ref_log_probs
        )

    def trl_args(self, method: str) -> dict[str, Any]:
        """The config-class fields this description sets, for `method` (sft, dpo, kto).

        Written even where they equal TRL's defaults, so a new TRL default cannot change the
        run under the estimate. use_liger_kernel stays off: it needs the liger-kernel package,
        which the package does not install.
        """
        args: dict[str, Any] = {"use_liger_kernel": False, "logging_steps": self.logging_steps}
        if method == "sft":
            args |= {
                "loss_type": self.sft_loss_type,
                "packing": self.packing,
                "padding_free": self.padding_free,
            }
        else:
            args["precompute_ref_log_probs"] = self.precompute_ref_log_probs
        return args

    def plan_fields(self, adapter: str, bf16: bool, fp16: bool) -> dict[str, Any]:
        """The estimator's TrainingPlan fields this description decides for a run of `adapter`
        under that mixed precision."""
        return {
            "weights_dtype": self.weights_dtype(adapter, bf16, fp16),
            "sft_loss": self.sft_loss_type,
            "packing": self.packing,
            "precompute_ref_log_probs": self.precompute_ref_log_probs,
            "reference_in_compute_dtype": self.full_reference_in_compute_dtype,
        }


def compute_dtype(bf16: bool, fp16: bool) -> Dtype:
    """The dtype matmuls run in under the run's mixed precision."""
    if bf16:
        return "bfloat16"
    return "float16" if fp16 else "float32"
