"""The training settings the estimate depends on, read from the template keys of step 2.

Only the keys that move memory or time are read; the rest of a template (learning rate,
scheduler, seed ...) is accepted and ignored.
"""

import difflib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from tools.deployment_estimator.config import Method, Optimizer
from tools.deployment_estimator.shapes import ModelShape
from tools.errors import UserError
from tools.template_loader.keys import KeyRule, check_value
from tools.trainer_run import SftLoss, TrainerRun, compute_dtype

ALL_LINEAR = "all-linear"
# Forward passes without gradients for each trained token, besides its own, as (the policy's,
# the reference's): DPO's reference model over every sequence (TRL DPOTrainer); KTO's policy
# over the mismatched completion its KL term needs, and its reference over both the completion
# and that one (TRL 1.13 KTOTrainer._compute_loss). The mismatched completions are the batch's
# own, rotated, so they are as long as the trained ones. Precomputed reference log-probs
# (precompute_ref_log_probs) run the reference's once over the training set before the first
# step (TRL 1.13 DPOTrainer/KTOTrainer.__init__), whatever the number of epochs; the policy's
# stay at every step.
NO_GRAD_FORWARDS = {"sft": (0, 0), "dpo": (0, 1), "kto": (1, 2)}


class TrainingPlan(BaseModel):
    """What step 2's configuration says about the run, in the estimator's terms."""

    method: Literal["sft", "dpo", "kto"] = Field(
        default="sft",
        description="dpo runs chosen and rejected together plus a reference pass; kto one "
        "answer with gradients and three passes without.",
    )
    adapter: Literal["lora", "qlora", "none"]
    batch_size: Annotated[int, Field(ge=1)]
    gradient_accumulation_steps: Annotated[int, Field(ge=1)]
    max_seq_length: Annotated[int, Field(ge=1)]
    num_epochs: Annotated[float, Field(gt=0)]
    gradient_checkpointing: bool
    load_in_4bit: bool = False
    bnb_4bit_use_double_quant: bool = True
    optimizer: Optimizer
    bf16: bool = True
    fp16: bool = False
    lora_r: Annotated[int, Field(ge=1)] | None = None
    target_modules: str | list[str] | None = None
    # What the trainer decides beyond the template's keys. The defaults are a plain transformers
    # Trainer run (the published measurements'); the package's run sets every one from
    # configs/package.yaml `run` (tools/trainer_run.py), whatever a caller passes.
    weights_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="The dtype the model loads in: full fine-tuning's master weights, the "
        "frozen base of LoRA, what QLoRA's 4-bit blocks dequantise to. auto: the checkpoint's "
        "16 bits, except full fine-tuning without bf16 on a bf16 GPU (fp32 master weights). "
        "Without bf16/fp16 autocast, activations and logits are computed in it too.",
    )
    sft_loss: SftLoss = Field(
        default="nll", description="nll: transformers' loss over full logits; chunked_nll: TRL's."
    )
    packing: bool = Field(default=False, description="Rows filled to max_seq_length.")
    precompute_ref_log_probs: bool = False
    reference_in_compute_dtype: bool = Field(
        default=False,
        description="A full fine-tuning reference copy loads in the compute dtype (train.py), "
        "not like the trained model (TRL).",
    )

    @property
    def kind(self) -> Method:
        """full, lora or qlora: what decides weights, gradients and optimizer states."""
        if self.adapter == "none":
            return "full"
        return "qlora" if self.adapter == "qlora" or self.load_in_4bit else "lora"

    @property
    def sequences_per_example(self) -> int:
        """DPO (TRL's concatenated forward) runs the chosen and the rejected answer together;
        KTO's other passes run without gradients, so they keep no activations."""
        return 2 if self.method == "dpo" else 1

    @property
    def no_grad_forwards(self) -> float:
        """Forward passes without gradients per trained token (NO_GRAD_FORWARDS); precomputed
        reference passes, made once, spread over the epochs' tokens."""
        policy, reference = NO_GRAD_FORWARDS[self.method]
        return policy + reference / (self.num_epochs if self.precompute_ref_log_probs else 1)

    @property
    def reference_dtype(self) -> str:
        """The dtype the reference copy (reference_copy) loads in."""
        if self.reference_in_compute_dtype:
            return compute_dtype(self.bf16, self.fp16)
        return self.weights_dtype

    @property
    def reference_copy(self) -> bool:
        """DPO and KTO score the answers with a frozen reference model: under LoRA the base with
        the adapters switched off (no memory), in full fine-tuning a copy of the model loaded
        like it (TRL), unless the reference log-probs were computed before training."""
        return self.method != "sft" and self.kind == "full" and not self.precompute_ref_log_probs

    def sequence_tokens(self, longest: int | None) -> int:
        """Tokens per sequence of the largest micro-batch: TRL pads each batch to its longest
        example, so the data's longest (truncated at max_seq_length) when known; packed rows
        and unknown data fill max_seq_length."""
        if longest is None or self.packing:
            return self.max_seq_length
        return min(longest, self.max_seq_length)

    def lora_modules(self, shape: ModelShape) -> tuple[str, ...]:
        """The decoder projections that get LoRA adapters; empty for full fine-tuning."""
        if self.kind == "full":
            return ()
        targets = self.target_modules or ALL_LINEAR
        if targets == ALL_LINEAR:
            return shape.linear_modules
        names = [targets] if isinstance(targets, str) else list(targets)
        unknown = [n for n in names if n not in shape.linear_modules]
        if unknown:
            raise UserError(
                f"target_modules {', '.join(unknown)} are not projections this estimator knows "
                f"for this model; use '{ALL_LINEAR}' or names from "
                f"{', '.join(shape.linear_modules)}."
            )
        return tuple(m for m in shape.linear_modules if m in names)

    def adapter_params(self, shape: ModelShape) -> int:
        """LoRA adds A (r x in) and B (out x r) to each targeted projection: r * (in + out)."""
        if self.lora_r is None:
            return 0
        return shape.layers * self.lora_r * shape.lora_width(self.lora_modules(shape))

    def with_changes(self, **changes: Any) -> "TrainingPlan":
        return self.model_validate({**self.model_dump(), **changes})


RUN_KEYS = frozenset(
    (
        "weights_dtype",
        "sft_loss",
        "packing",
        "precompute_ref_log_probs",
        "reference_in_compute_dtype",
    )
)
PLAN_KEYS = frozenset(TrainingPlan.model_fields) - RUN_KEYS


def plan_from_keys(
    values: dict[str, Any], rules: Mapping[str, KeyRule], run: TrainerRun
) -> TrainingPlan:
    """A TrainingPlan from template keys and the package's `run`; UserError naming each
    missing, misspelt or bad key.

    `rules` are every key a configuration may hold (configs/templates.yaml); other keys are
    typos and are reported with the closest known name. A value outside its key's limits is
    refused as apply_template refuses it: no package runs it, and a huge batch_size would keep
    the micro-batch fix's search busy for minutes.
    """
    known_keys = frozenset(rules)
    unknown = sorted(set(values) - known_keys - PLAN_KEYS)
    if unknown:
        hints = [
            f"'{k}'" + (f" (did you mean '{m[0]}'?)" if (m := _close(k, known_keys)) else "")
            for k in unknown
        ]
        raise UserError(f"Unknown training keys: {', '.join(hints)}.")
    refused = [
        issue.message
        for key, value in values.items()
        if key in rules and value is not None
        for issue in check_value(key, rules[key], value).issues
        if issue.severity == "error"
    ]
    if refused:
        raise UserError(
            f"{' '.join(refused)} Pass `training` values apply_template accepts "
            "(configs/templates.yaml)."
        )
    try:
        given = TrainingPlan.model_validate({k: v for k, v in values.items() if k in PLAN_KEYS})
        plan = given.with_changes(**run.plan_fields(given.adapter, given.bf16, given.fp16))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(
            f"The training settings cannot be estimated: {problems}. Apply a template "
            "(apply_template) or pass these keys in `training`."
        ) from exc
    if plan.kind != "full" and plan.lora_r is None:
        raise UserError("LoRA needs lora_r (the adapter rank); pass it in `training`.")
    return plan


def _close(key: str, known: frozenset[str]) -> list[str]:
    return difflib.get_close_matches(key, sorted(known | PLAN_KEYS), n=1)
