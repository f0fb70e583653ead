"""The figures a user asks about that follow from the configuration: batch, LoRA scale, share.

LoRA adds r * (d_in + d_out) parameters per adapted linear layer (matrices A: r x d_in and
B: d_out x r). On Llama-style decoders (llama, mistral, qwen2/3, gemma ...) every layer holds
q, k, v, o (k and v num_key_value_heads * head_dim wide) and gate, up, down, which are exactly
the layers PEFT's "all-linear" picks (it skips the output head).
"""

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from tools.model_browser.config import Architecture
from tools.template_loader.facts import CrossStepFacts

ALL_LINEAR = "all-linear"

# The numbers a configuration yields besides its own keys, by the name a band rule uses, with
# the keys each follows from.
DERIVED_FIGURES = {
    "effective_batch_size": ("batch_size", "gradient_accumulation_steps"),
    "lora_alpha_over_r": ("lora_alpha", "lora_r"),
}

_PROJECTIONS: dict[str, Callable[[Architecture], tuple[int, int]]] = {
    "q_proj": lambda a: (a.hidden_size, a.num_attention_heads * a.resolved_head_dim),
    "k_proj": lambda a: (a.hidden_size, a.num_key_value_heads * a.resolved_head_dim),
    "v_proj": lambda a: (a.hidden_size, a.num_key_value_heads * a.resolved_head_dim),
    "o_proj": lambda a: (a.num_attention_heads * a.resolved_head_dim, a.hidden_size),
    "gate_proj": lambda a: (a.hidden_size, a.intermediate_size),
    "up_proj": lambda a: (a.hidden_size, a.intermediate_size),
    "down_proj": lambda a: (a.intermediate_size, a.hidden_size),
}


class Derived(BaseModel):
    effective_batch_size: int | None = Field(default=None, description="Examples per step.")
    effective_batch_size_basis: str | None = None
    lora_alpha_over_r: float | None = None
    trainable_params: int | None = None
    trainable_share: float | None = Field(default=None, description="0 to 1.")
    trainable_basis: str = Field(description="How the share was found, or why not.")

    def figures(self) -> dict[str, float]:
        """The derived numbers band rules can test, by name."""
        found = {name: getattr(self, name) for name in DERIVED_FIGURES}
        return {name: value for name, value in found.items() if value is not None}


def derive(values: Mapping[str, Any], facts: CrossStepFacts) -> Derived:
    gpus = facts.target.gpu_count if facts.target else 1
    batch, accumulation = values.get("batch_size"), values.get("gradient_accumulation_steps")
    effective = basis = None
    if isinstance(batch, int) and isinstance(accumulation, int):
        effective = batch * accumulation * gpus
        where = f" on {facts.target.target}" if facts.target else " (one GPU until step 4)"
        basis = (
            f"batch_size {batch} x gradient_accumulation_steps {accumulation} x {gpus} GPU"
            f"{'s' if gpus > 1 else ''}{where}"
        )
    r, alpha = values.get("lora_r"), values.get("lora_alpha")
    ratio = alpha / r if isinstance(r, int) and isinstance(alpha, int) else None
    trainable, share, trainable_basis = _trainable(values, facts)
    return Derived(
        effective_batch_size=effective,
        effective_batch_size_basis=basis,
        lora_alpha_over_r=ratio,
        trainable_params=trainable,
        trainable_share=share,
        trainable_basis=trainable_basis,
    )


def _trainable(
    values: Mapping[str, Any], facts: CrossStepFacts
) -> tuple[int | None, float | None, str]:
    model = facts.model
    if values.get("adapter") == "none":
        params = model.params if model else None
        return params, 1.0, "full fine-tuning trains every parameter"
    r, targets = values.get("lora_r"), values.get("target_modules")
    if not isinstance(r, int) or targets is None:
        return None, None, "no LoRA rank or target modules set"
    if model is None or model.params is None or model.architecture is None:
        return None, None, "known once select_model has picked a model"
    arch = model.architecture
    if arch.num_experts:
        return None, None, "not estimated for mixture-of-experts models"
    names = list(_PROJECTIONS) if targets == ALL_LINEAR else _as_list(targets)
    unknown = [name for name in names if name not in _PROJECTIONS]
    if unknown:
        known = ", ".join(_PROJECTIONS)
        why = f"not estimated: {', '.join(unknown)} are not Llama-style projections ({known})"
        return None, None, why
    per_layer = sum(r * sum(_PROJECTIONS[name](arch)) for name in names)
    trainable = per_layer * arch.num_hidden_layers
    share = trainable / (model.params + trainable)
    basis = (
        f"LoRA r={r} on {', '.join(names)} in each of {arch.num_hidden_layers} layers "
        f"of {model.model_id}"
    )
    return trainable, share, basis


def _as_list(targets: Any) -> list[str]:
    return [targets] if isinstance(targets, str) else list(targets)
