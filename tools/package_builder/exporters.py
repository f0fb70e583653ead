"""Exporters: a validated training configuration in the exact field names of real trainers.

- TRL: SFTConfig / DPOConfig / KTOConfig keyword arguments, PEFT LoraConfig keyword arguments
  and the transformers BitsAndBytesConfig keyword arguments that the trainers take as
  `quantization_config` (QLoRA is expressed through model loading).
- Axolotl: one YAML config (AxolotlInputConfig keys).

Field names follow TRL at f2cd577 (2026-07-24; KTOConfig as trl 1.13.0 ships it), transformers
5.x, PEFT at 5d602fd (2026-08-21) and Axolotl at 067b021 (2026-07-24);
tests/data/trainer_fields/ lists each class's fields and the
tests check every exported key against them. Since transformers 5, warmup_steps below 1 is a
ratio and warmup_ratio is gone (removed in 5.15), so the TRL export needs transformers >= 5.
"""

from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from tools.errors import UserError
from tools.package_builder.shapes import Shape
from tools.template_loader.derived import ALL_LINEAR
from tools.template_loader.keys import Value
from tools.template_loader.results import TemplateResult
from tools.trainer_run import TrainerRun, compute_dtype

# Template keys whose value TRL's trainer configs take as they are, under another name.
TRL_ARGS = {
    "learning_rate": "learning_rate",
    "num_epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_seq_length": "max_length",
    "warmup_ratio": "warmup_steps",
    "warmup_steps": "warmup_steps",
    "lr_scheduler": "lr_scheduler_type",
    "optimizer": "optim",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "gradient_checkpointing": "gradient_checkpointing",
    "bf16": "bf16",
    "fp16": "fp16",
    "seed": "seed",
    "beta": "beta",
    "desirable_weight": "desirable_weight",
    "undesirable_weight": "undesirable_weight",
}
PEFT_ARGS = {
    "lora_r": "r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "target_modules": "target_modules",
}
BNB_ARGS = {
    "load_in_4bit": "load_in_4bit",
    "bnb_4bit_quant_type": "bnb_4bit_quant_type",
    "bnb_4bit_use_double_quant": "bnb_4bit_use_double_quant",
}
AXOLOTL_ARGS = {
    "learning_rate": "learning_rate",
    "num_epochs": "num_epochs",
    "batch_size": "micro_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "max_seq_length": "sequence_len",
    "warmup_ratio": "warmup_ratio",
    "warmup_steps": "warmup_steps",
    "lr_scheduler": "lr_scheduler",
    "optimizer": "optimizer",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "gradient_checkpointing": "gradient_checkpointing",
    "bf16": "bf16",
    "fp16": "fp16",
    "seed": "seed",
    "load_in_4bit": "load_in_4bit",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "beta": "rl_beta",
    "desirable_weight": "kto_desirable_weight",
    "undesirable_weight": "kto_undesirable_weight",
}
# Keys each exporter turns into something other than a renamed field.
TRL_SHAPING_KEYS = ("method", "adapter")
AXOLOTL_SHAPING_KEYS = ("method", "adapter", "target_modules", *BNB_ARGS)

_TRAINERS = {
    "sft": ("SFTTrainer", "SFTConfig"),
    "dpo": ("DPOTrainer", "DPOConfig"),
    "kto": ("KTOTrainer", "KTOConfig"),
}
# What each method adds to an Axolotl config: preference methods run as `rl`; kto also needs
# remove_unused_columns false (utils/schemas/validation.py check_kto_config at 067b021), since
# its label column is no model input.
_AXOLOTL_METHOD: dict[str, dict[str, Any]] = {
    "sft": {},
    "dpo": {"rl": "dpo"},
    "kto": {"rl": "kto", "remove_unused_columns": False},
}


class TrlExport(BaseModel):
    """What a train.py needs to build TRL's trainer."""

    trainer: Literal["SFTTrainer", "DPOTrainer", "KTOTrainer"]
    config_class: Literal["SFTConfig", "DPOConfig", "KTOConfig"]
    args: dict[str, Any] = Field(description="Keyword arguments of config_class.")
    peft_config: dict[str, Any] | None = Field(
        description="peft.LoraConfig keyword arguments; None for full fine-tuning."
    )
    quantization_config: dict[str, Any] | None = Field(
        description="transformers.BitsAndBytesConfig keyword arguments, passed to the trainer as "
        "quantization_config; None unless the base is loaded in 4-bit."
    )
    reference_in_compute_dtype: bool = Field(
        default=False,
        description="DPO/KTO full fine-tuning: train.py loads the reference copy like the model "
        "but in the run's compute dtype, and passes it as ref_model.",
    )
    base_model: str | None = None


class AxolotlExport(BaseModel):
    config: dict[str, Any] = Field(description="AxolotlInputConfig keys, in file order.")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.config, sort_keys=False, width=100)


def export_trl(
    result: TemplateResult,
    run: TrainerRun,
    *,
    base_model: str | None = None,
    revision: str | None = None,
) -> TrlExport:
    """TRL + PEFT (+ bitsandbytes) keyword arguments for a valid apply_template result, with the
    trainer settings `run` pins (the run estimate_deployment estimates)."""
    config = _validated(result, "TRL", [*TRL_ARGS, *PEFT_ARGS, *BNB_ARGS, *TRL_SHAPING_KEYS])
    method = str(config["method"])
    trainer, config_class = _TRAINERS[method]
    args = {TRL_ARGS[key]: value for key, value in config.items() if key in TRL_ARGS}
    # train.py ends with trainer.evaluate(): at the training micro batch, not TrainingArguments'
    # default of 8, a forward without gradients holds less than the training step the estimate
    # fits (a micro-batch-1 fix included), so the run cannot run out of memory after training.
    args["per_device_eval_batch_size"] = args["per_device_train_batch_size"]
    args |= run.trl_args(method)
    bf16, fp16 = config.get("bf16") is True, config.get("fp16") is True
    model_init = {"dtype": run.weights_dtype(str(config["adapter"]), bf16, fp16)}
    if revision:
        model_init["revision"] = revision
    args["model_init_kwargs"] = model_init
    peft = None
    if config["adapter"] != "none":
        peft = {PEFT_ARGS[key]: value for key, value in config.items() if key in PEFT_ARGS}
        peft["task_type"] = "CAUSAL_LM"
    quantization = None
    if config.get("load_in_4bit") is True:
        quantization = {BNB_ARGS[key]: value for key, value in config.items() if key in BNB_ARGS}
        # TRL's get_quantization_config computes in the dtype the rest of the model loads in.
        quantization["bnb_4bit_compute_dtype"] = compute_dtype(bf16, fp16)
    return TrlExport(
        trainer=trainer,
        config_class=config_class,
        args=args,
        peft_config=peft,
        quantization_config=quantization,
        reference_in_compute_dtype=run.reference_in_compute_dtype(method, str(config["adapter"])),
        base_model=base_model,
    )


def export_axolotl(
    result: TemplateResult,
    *,
    base_model: str | None = None,
    revision: str | None = None,
    datasets: list[dict[str, Any]] | None = None,
    test_datasets: list[dict[str, Any]] | None = None,
) -> AxolotlExport:
    """An Axolotl config for a valid apply_template result; base model and datasets as given
    (`test_datasets`: the held-out data Axolotl evaluates on)."""
    config = _validated(result, "Axolotl", [*AXOLOTL_ARGS, *AXOLOTL_SHAPING_KEYS])
    out: dict[str, Any] = {}
    if base_model:
        out["base_model"] = base_model
    if revision:
        out["model_revision"] = revision
    out.update(_AXOLOTL_METHOD[str(config["method"])])
    if config["adapter"] != "none":
        out["adapter"] = config["adapter"]
    out.update({AXOLOTL_ARGS[key]: value for key, value in config.items() if key in AXOLOTL_ARGS})
    targets = config.get("target_modules")
    if targets == ALL_LINEAR:
        out["lora_target_linear"] = True
    elif targets is not None:
        out["lora_target_modules"] = targets
    quantization = {BNB_ARGS[key]: value for key, value in config.items() if key in BNB_ARGS}
    quantization.pop("load_in_4bit", None)  # a top-level key in Axolotl
    if quantization:
        out["bnb_config_kwargs"] = quantization
    if datasets:
        out["datasets"] = datasets
    if test_datasets:
        out["test_datasets"] = test_datasets
    return AxolotlExport(config=out)


def axolotl_dataset(shape: Shape, conversational: bool, path: str) -> dict[str, Any] | None:
    """An Axolotl `datasets` entry reading the package's records of `shape` at `path` as they
    are, or None for conversational prompt-completion and unpaired records, which no Axolotl
    loader reads.

    Loaders (src/axolotl/prompt_strategies/ at 067b021): chat_template for `messages`, completion
    for `text`, a user-defined instruction format for string prompt/completion, for DPO the
    passthrough strategy, which hands TRL's preference records to TRL's DPOTrainer unchanged,
    and for KTO the user-defined strategy (kto/user_defined.py), whose default formats
    "{prompt}" and "{completion}" keep string records as they are.
    """
    if shape is Shape.MESSAGES:
        return {
            "path": path,
            "ds_type": "json",
            "type": "chat_template",
            "field_messages": "messages",
        }
    if shape is Shape.TEXT:
        return {"path": path, "ds_type": "json", "type": "completion", "field": "text"}
    if shape is Shape.PREFERENCE:
        return {"path": path, "split": "train", "type": "passthrough"}
    if conversational:
        return None
    if shape is Shape.UNPAIRED:
        fields = {"field_prompt": "prompt", "field_completion": "completion"}
        return {"path": path, "split": "train", "type": {**fields, "field_label": "label"}}
    prompt_only = "{instruction}"
    return {
        "path": path,
        "ds_type": "json",
        "type": {
            "field_instruction": "prompt",
            "field_output": "completion",
            "format": prompt_only,
            "no_input_format": prompt_only,
        },
    }


def _validated(result: TemplateResult, trainer: str, known: list[str]) -> Mapping[str, Value]:
    if not result.valid:
        problems = "; ".join(issue.message for issue in result.errors)
        raise UserError(
            f"The configuration has errors, so no {trainer} config was written: {problems} "
            "Fix them with apply_template first."
        )
    unmapped = sorted(set(result.config) - set(known))
    if unmapped:
        raise UserError(
            f"The configuration keys {', '.join(unmapped)} have no {trainer} equivalent. "
            "Remove them from configs/templates.yaml or map them in "
            "tools/package_builder/exporters.py."
        )
    return result.config
