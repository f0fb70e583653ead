"""TRL/PEFT and Axolotl exports: every emitted key is a field the trainer documents.

The field lists under tests/data/trainer_fields/ were read from each project's source (the
header of each file names the repository, path and commit).
"""

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings
from tools.errors import UserError
from tools.package_builder import (
    AXOLOTL_ARGS,
    AXOLOTL_SHAPING_KEYS,
    BNB_ARGS,
    PEFT_ARGS,
    TRL_ARGS,
    TRL_SHAPING_KEYS,
    export_axolotl,
    export_trl,
)
from tools.template_loader.results import TemplateResult
from tools.template_loader.service import apply_template

FIELDS_DIR = Path(__file__).parent / "data" / "trainer_fields"
TEMPLATES = ["lora", "qlora", "full", "dpo", "kto"]


@cache
def documented(name: str) -> frozenset[str]:
    """The names in FIELDS_DIR/<name>.txt, plus those of the files its `# inherits:` names."""
    names: set[str] = set()
    for line in (FIELDS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("# inherits:"):
            names |= documented(line.split(":", 1)[1].strip())
        elif line.strip() and not line.startswith("#"):
            names.add(line.strip())
    return frozenset(names)


def result(settings: Settings, template: str, **overrides: Any) -> TemplateResult:
    found = apply_template(settings.templates, template, overrides)
    assert found.valid, found.errors
    return found


def test_field_lists_name_their_source() -> None:
    for path in FIELDS_DIR.glob("*.txt"):
        header = path.read_text(encoding="utf-8")
        assert "# repository: " in header and "commit: " in header, path.name
    assert {"learning_rate", "per_device_train_batch_size", "warmup_steps"} <= documented(
        "trl.SFTConfig"
    )
    assert "warmup_ratio" not in documented("transformers.TrainingArguments")
    assert {"beta", "max_length"} <= documented("trl.DPOConfig")
    assert {"beta", "desirable_weight", "undesirable_weight"} <= documented("trl.KTOConfig")
    assert "max_prompt_length" not in documented("trl.DPOConfig")
    assert {"r", "lora_alpha", "task_type"} <= documented("peft.LoraConfig")
    assert {"rl_beta", "micro_batch_size", "sequence_len"} <= documented(
        "axolotl.AxolotlInputConfig"
    )
    assert "dpo_beta" not in documented("axolotl.AxolotlInputConfig")
    assert {"kto_desirable_weight", "remove_unused_columns"} <= documented(
        "axolotl.AxolotlInputConfig"
    )


# --- TRL + PEFT ---------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_trl_export_uses_only_documented_fields(settings: Settings, template: str) -> None:
    export = export_trl(
        result(settings, template), settings.package.run, base_model="org/model", revision="abc123"
    )
    assert set(export.args) <= documented(f"trl.{export.config_class}")
    assert set(export.args["model_init_kwargs"]) <= documented("trl.model_init_kwargs")
    if export.peft_config is not None:
        assert set(export.peft_config) <= documented("peft.LoraConfig")
    if export.quantization_config is not None:
        assert set(export.quantization_config) <= documented("transformers.BitsAndBytesConfig")
    assert export.args["optim"] in documented("transformers.OptimizerNames")


def test_trl_export_of_lora(settings: Settings) -> None:
    export = export_trl(result(settings, "lora"), settings.package.run, revision="abc123")
    assert (export.trainer, export.config_class) == ("SFTTrainer", "SFTConfig")
    assert export.args == {
        "learning_rate": 2e-4,
        "num_train_epochs": 3.0,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2,  # the final evaluate() at the training micro batch
        "gradient_accumulation_steps": 4,
        "max_length": 2048,
        "warmup_steps": 0.1,  # a ratio: transformers 5 reads warmup_steps < 1 as one
        "lr_scheduler_type": "cosine",
        "optim": "adamw_torch_fused",
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "gradient_checkpointing": True,
        "bf16": True,
        "fp16": False,
        "seed": 42,
        # the run configs/package.yaml pins, written even where it is TRL 1.13's default
        "use_liger_kernel": False,
        "logging_steps": 0.01,  # a progress line every 1% of the run
        "loss_type": "chunked_nll",
        "packing": False,
        "padding_free": False,
        "model_init_kwargs": {"dtype": "bfloat16", "revision": "abc123"},
    }
    assert export.peft_config == {
        "r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "target_modules": "all-linear",
        "task_type": "CAUSAL_LM",
    }
    assert export.quantization_config is None


def test_trl_export_of_qlora_loads_the_base_in_4bit(settings: Settings) -> None:
    export = export_trl(result(settings, "qlora"), settings.package.run)
    assert export.quantization_config == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": "bfloat16",
    }
    assert export.args["optim"] == "paged_adamw_8bit"
    assert export.peft_config is not None and export.peft_config["r"] == 16


def test_the_qlora_adapter_on_the_lora_template_exports_a_4bit_base(settings: Settings) -> None:
    quantised = export_trl(
        result(settings, "lora", adapter="qlora"), settings.package.run
    ).quantization_config
    assert (
        quantised == export_trl(result(settings, "qlora"), settings.package.run).quantization_config
    )
    assert export_axolotl(result(settings, "lora", adapter="qlora")).config["load_in_4bit"] is True


def test_trl_export_of_full_fine_tuning(settings: Settings) -> None:
    export = export_trl(result(settings, "full"), settings.package.run)
    assert export.peft_config is None and export.quantization_config is None
    # float32 master weights under bf16 mixed precision, as TRL loads by default
    assert export.args["model_init_kwargs"] == {"dtype": "float32"}
    assert export.args["learning_rate"] == 2e-5


def test_trl_export_of_dpo(settings: Settings) -> None:
    export = export_trl(result(settings, "dpo"), settings.package.run)
    assert (export.trainer, export.config_class) == ("DPOTrainer", "DPOConfig")
    assert export.args["beta"] == 0.1 and export.args["max_length"] == 1024
    assert export.args["learning_rate"] == 5e-6


def test_trl_export_of_kto(settings: Settings) -> None:
    export = export_trl(result(settings, "kto", desirable_weight=1.5), settings.package.run)
    assert (export.trainer, export.config_class) == ("KTOTrainer", "KTOConfig")
    assert export.args["beta"] == 0.1 and export.args["max_length"] == 1024
    assert (export.args["desirable_weight"], export.args["undesirable_weight"]) == (1.5, 1.0)
    assert export.args["per_device_train_batch_size"] == 2
    assert export.peft_config is not None


def test_every_method_has_a_trainer_in_both_exports(settings: Settings) -> None:
    methods = settings.templates.keys["method"].enum or []
    for template in settings.templates.templates:
        found = result(settings, template)
        assert export_trl(found, settings.package.run).trainer and export_axolotl(found).config
    assert {result(settings, t).method for t in settings.templates.templates} == set(methods)


def test_trl_export_follows_overrides(settings: Settings) -> None:
    config = result(
        settings,
        "qlora",
        warmup_steps=25,
        bf16=False,
        fp16=True,
        target_modules=["q_proj", "v_proj"],
    )
    export = export_trl(config, settings.package.run)
    assert export.args["warmup_steps"] == 25 and "warmup_ratio" not in export.args
    assert export.args["fp16"] is True and export.args["bf16"] is False
    assert export.quantization_config is not None
    assert export.quantization_config["bnb_4bit_compute_dtype"] == "float16"
    assert export.args["model_init_kwargs"] == {"dtype": "float16"}
    assert export.peft_config is not None
    assert export.peft_config["target_modules"] == ["q_proj", "v_proj"]


# --- Axolotl ------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_axolotl_export_uses_only_documented_fields(settings: Settings, template: str) -> None:
    export = export_axolotl(
        result(settings, template),
        base_model="org/model",
        revision="abc123",
        datasets=[{"path": "data/train.jsonl", "type": "chat_template"}],
    )
    assert set(export.config) <= documented("axolotl.AxolotlInputConfig")
    assert set(export.config.get("bnb_config_kwargs", {})) <= documented(
        "transformers.BitsAndBytesConfig"
    )
    assert export.config["optimizer"] in documented("transformers.OptimizerNames")
    assert yaml.safe_load(export.to_yaml()) == export.config


def test_axolotl_export_of_lora(settings: Settings) -> None:
    datasets = [{"path": "data/train.jsonl", "type": "chat_template"}]
    export = export_axolotl(result(settings, "lora"), base_model="org/model", datasets=datasets)
    assert export.config == {
        "base_model": "org/model",
        "adapter": "lora",
        "learning_rate": 2e-4,
        "num_epochs": 3.0,
        "micro_batch_size": 2,
        "gradient_accumulation_steps": 4,
        "sequence_len": 2048,
        "warmup_ratio": 0.1,
        "lr_scheduler": "cosine",
        "optimizer": "adamw_torch_fused",
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "gradient_checkpointing": True,
        "bf16": True,
        "fp16": False,
        "load_in_4bit": False,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "seed": 42,
        "lora_target_linear": True,
        "datasets": datasets,
    }


def test_axolotl_export_of_qlora(settings: Settings) -> None:
    config = export_axolotl(result(settings, "qlora")).config
    assert config["adapter"] == "qlora" and config["load_in_4bit"] is True
    assert config["bnb_config_kwargs"] == {
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
    }
    assert "base_model" not in config and "datasets" not in config


def test_axolotl_export_of_full_fine_tuning(settings: Settings) -> None:
    config = export_axolotl(result(settings, "full")).config
    assert "adapter" not in config
    assert not [key for key in config if key.startswith("lora_")]


def test_axolotl_export_of_dpo(settings: Settings) -> None:
    config = export_axolotl(result(settings, "dpo"), revision="abc123").config
    assert config["rl"] == "dpo" and config["rl_beta"] == 0.1
    assert config["model_revision"] == "abc123"
    assert config["sequence_len"] == 1024


def test_axolotl_export_of_kto(settings: Settings) -> None:
    config = export_axolotl(result(settings, "kto", undesirable_weight=0.5)).config
    assert config["rl"] == "kto" and config["rl_beta"] == 0.1
    assert (config["kto_desirable_weight"], config["kto_undesirable_weight"]) == (1.0, 0.5)
    # Axolotl refuses rl kto unless the label column survives (check_kto_config)
    assert config["remove_unused_columns"] is False
    assert "rl" not in export_axolotl(result(settings, "lora")).config


def test_axolotl_export_of_a_module_list_and_warmup_steps(settings: Settings) -> None:
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    found = result(settings, "lora", target_modules=targets, warmup_steps=30)
    config = export_axolotl(found).config
    assert config["lora_target_modules"] == targets and "lora_target_linear" not in config
    assert config["warmup_steps"] == 30 and "warmup_ratio" not in config


# --- both ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("trainer", ["trl", "axolotl"])
def test_an_invalid_configuration_is_not_exported(settings: Settings, trainer: str) -> None:
    invalid = apply_template(settings.templates, "qlora", {"load_in_4bit": False})
    with pytest.raises(UserError) as exc:
        if trainer == "trl":
            export_trl(invalid, settings.package.run)
        else:
            export_axolotl(invalid)
    assert "The configuration has errors" in str(exc.value)
    assert "load_in_4bit is false" in str(exc.value)


def test_every_key_has_a_place_in_both_exports(settings: Settings) -> None:
    keys = set(settings.templates.keys)
    assert keys <= {*TRL_ARGS, *PEFT_ARGS, *BNB_ARGS, *TRL_SHAPING_KEYS}
    assert keys <= {*AXOLOTL_ARGS, *AXOLOTL_SHAPING_KEYS}


def test_an_unmapped_key_is_refused_not_dropped(settings: Settings) -> None:
    found = result(settings, "lora")
    extended = found.model_copy(update={"config": {**found.config, "label_smoothing": 0.1}})
    with pytest.raises(UserError, match="label_smoothing have no TRL equivalent"):
        export_trl(extended, settings.package.run)


def test_trainer_names_are_known_aliases_of_the_keys(settings: Settings) -> None:
    """An unknown-key answer can point from a trainer's name back to the template key."""
    for mapping in (TRL_ARGS, PEFT_ARGS, AXOLOTL_ARGS):
        for key, name in mapping.items():
            rule = settings.templates.keys[key]
            assert name == key or name in rule.aliases or key == "warmup_ratio", (key, name)
