"""apply_template as a service: every rule fires where it should and stays quiet elsewhere."""

from typing import Any

import pytest

from server.settings import Settings
from tools.errors import UserError
from tools.model_browser.config import Architecture
from tools.template_loader.facts import CrossStepFacts, ModelFacts, TargetFacts
from tools.template_loader.issues import ConfigIssue
from tools.template_loader.rules import ImpliesRule
from tools.template_loader.service import (
    TemplateResult,
    apply_template,
    carried_overrides,
    describe_templates,
    merge_overrides,
)

# meta-llama/Llama-3.2-1B: config.json and safetensors parameter count.
LLAMA_1B = Architecture(
    model_type="llama",
    num_hidden_layers=16,
    hidden_size=2048,
    intermediate_size=8192,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    vocab_size=128256,
    context_length=131072,
    tie_word_embeddings=True,
)
LLAMA_1B_PARAMS = 1_235_814_400


def model(context_length: int = 131072, **arch: Any) -> CrossStepFacts:
    architecture = LLAMA_1B.model_copy(update={"context_length": context_length, **arch})
    return CrossStepFacts(
        model=ModelFacts(
            model_id="meta-llama/Llama-3.2-1B",
            params=LLAMA_1B_PARAMS,
            context_length=context_length,
            architecture=architecture,
        )
    )


def data(*formats: str) -> CrossStepFacts:
    return CrossStepFacts(dataset_formats=list(formats))


def target(gpu: str, bf16: bool, count: int = 1) -> CrossStepFacts:
    return CrossStepFacts(
        target=TargetFacts(target=f"{gpu}-box", gpu=gpu, gpu_count=count, supports_bf16=bf16)
    )


def run(
    settings: Settings,
    template: str,
    overrides: dict[str, Any] | None = None,
    facts: CrossStepFacts | None = None,
) -> TemplateResult:
    return apply_template(settings.templates, template, overrides, facts)


def codes(issues: list[ConfigIssue]) -> list[str]:
    return [issue.code for issue in issues]


# --- the shipped templates -------------------------------------------------------------------


@pytest.mark.parametrize("template", ["lora", "qlora", "full", "dpo"])
def test_every_template_is_valid_and_quiet_as_shipped(settings: Settings, template: str) -> None:
    result = run(settings, template)
    assert result.valid and result.errors == [] and result.warnings == []
    assert result.config["method"] == result.method
    assert set(result.provenance) == set(result.config)
    assert set(result.provenance.values()) <= {"template", "default"}


def test_templates_carry_their_method_specific_keys(settings: Settings) -> None:
    lora, qlora, full, dpo = (run(settings, t).config for t in ("lora", "qlora", "full", "dpo"))
    assert lora["adapter"] == "lora" and lora["load_in_4bit"] is False and "beta" not in lora
    assert "bnb_4bit_quant_type" not in lora
    assert qlora["adapter"] == "qlora" and qlora["load_in_4bit"] is True
    assert qlora["bnb_4bit_quant_type"] == "nf4" and qlora["bnb_4bit_use_double_quant"] is True
    assert full["adapter"] == "none"
    assert not {"lora_r", "lora_alpha", "lora_dropout", "target_modules", "beta"} & set(full)
    assert dpo["method"] == "dpo" and dpo["beta"] == 0.1
    required = {
        "learning_rate",
        "num_epochs",
        "batch_size",
        "gradient_accumulation_steps",
        "max_seq_length",
        "warmup_ratio",
        "lr_scheduler",
        "optimizer",
        "weight_decay",
        "gradient_checkpointing",
        "bf16",
    }
    for config in (lora, qlora, full, dpo):
        assert required <= set(config)


def test_values_take_their_keys_types(settings: Settings) -> None:
    config = run(settings, "lora").config
    assert isinstance(config["num_epochs"], float)  # written as 3 in the YAML
    assert isinstance(config["batch_size"], int) and isinstance(config["bf16"], bool)


def test_template_ids_ignore_case_and_spaces(settings: Settings) -> None:
    assert run(settings, " QLoRA ").template == "qlora"


def test_unknown_template_is_raised_with_a_suggestion(settings: Settings) -> None:
    with pytest.raises(UserError) as exc:
        run(settings, "lroa")
    assert "There is no template 'lroa'. Did you mean 'lora'?" in str(exc.value)
    assert "lora, qlora, full, dpo" in str(exc.value)


# --- overrides and provenance ------------------------------------------------------------------


def test_override_merges_and_provenance_names_each_source(settings: Settings) -> None:
    result = run(settings, "lora", {"learning_rate": 1e-4, "lora_r": 32})
    assert result.valid
    assert result.config["learning_rate"] == 1e-4 and result.config["lora_r"] == 32
    assert result.provenance["learning_rate"] == "override"
    assert result.provenance["lora_r"] == "override"
    assert result.provenance["batch_size"] == "template"
    assert result.provenance["weight_decay"] == "default"  # not in the lora template
    assert result.config["weight_decay"] == 0.0
    assert result.overrides == {"learning_rate": 1e-4, "lora_r": 32}


def test_null_override_is_no_override(settings: Settings) -> None:
    result = run(settings, "lora", {"learning_rate": None})
    assert (
        result.config["learning_rate"] == 2e-4 and result.provenance["learning_rate"] == "template"
    )
    assert result.overrides == {}


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("learning_rate", "1e-4", 1e-4),
        ("num_epochs", 2, 2.0),
        ("batch_size", 4.0, 4),
        ("bf16", "false", False),
        ("gradient_checkpointing", "TRUE", True),
        ("target_modules", [" q_proj ", "v_proj"], ["q_proj", "v_proj"]),
    ],
)
def test_values_are_coerced_to_the_keys_type(
    settings: Settings, key: str, raw: Any, expected: Any
) -> None:
    result = run(settings, "lora", {key: raw, "fp16": False})
    assert result.config[key] == expected and type(result.config[key]) is type(expected)
    assert result.provenance[key] == "override"


@pytest.mark.parametrize(
    ("overrides", "code", "text"),
    [
        ({"lora_r": 10**500}, "above_max", "lora_r about 10^500 is above the maximum of 16384."),
        ({"lora_r": -(10**5000)}, "below_min", "lora_r about -10^5000 is below the minimum of 1."),
        ({"lora_r": 1e300}, "above_max", "lora_r about 10^300 is above the maximum"),
        ({"learning_rate": 10**500}, "above_max", "learning_rate about 10^500 is above"),
        ({"bf16": 10**500}, "wrong_type", "bf16 must be true or false; got about 10^500"),
    ],
)
def test_a_huge_number_is_an_error_in_few_words(
    settings: Settings, overrides: dict, code: str, text: str
) -> None:
    """No OverflowError from float(), no str() of thousands of digits."""
    result = run(settings, "lora", overrides)
    assert codes(result.errors) == [code]
    (key,) = overrides
    assert result.errors[0].message.startswith(text) and len(result.errors[0].message) < 80
    assert result.provenance[key] == "template"


def test_rejected_override_keeps_the_template_value(settings: Settings) -> None:
    result = run(settings, "lora", {"learning_rate": 0.5})
    assert not result.valid
    assert codes(result.errors) == ["above_max"]
    assert result.errors[0].keys == ["learning_rate"]
    assert "0.5 is above the maximum of 0.01" in result.errors[0].message
    assert "between 1e-08 and 0.01" in (result.errors[0].fix or "")
    assert result.config["learning_rate"] == 2e-4
    assert result.provenance["learning_rate"] == "template"


@pytest.mark.parametrize(
    ("overrides", "code", "text"),
    [
        ({"learning_rate": "fast"}, "wrong_type", "learning_rate must be a number; got 'fast'"),
        ({"batch_size": 2.5}, "wrong_type", "batch_size must be a whole number"),
        ({"batch_size": True}, "wrong_type", "batch_size must be a whole number"),
        ({"bf16": "yes"}, "wrong_type", "bf16 must be true or false"),
        ({"target_modules": ["q_proj", 3]}, "wrong_type", "a string or a list of strings"),
        ({"target_modules": []}, "wrong_type", "a string or a list of strings"),
        ({"optimizer": "adamw_torh"}, "not_allowed", "Did you mean 'adamw_torch'?"),
        ({"lr_scheduler": "cosin"}, "not_allowed", "Did you mean 'cosine'?"),
        ({"learning_rate": 0}, "below_min", "below the minimum of 1e-08"),
        ({"batch_size": 5000}, "above_max", "above the maximum of 4096"),
        ({"warmup_ratio": 0.8}, "above_max", "above the maximum of 0.5"),
        ({"lora_dropout": 1.0}, "above_max", "above the maximum of 0.9"),
        ({"num_epochs": float("nan")}, "wrong_type", "num_epochs must be a number"),
        ({"bf16": {"on": True}}, "wrong_type", "bf16 must be true or false; got an object."),
    ],
)
def test_per_key_errors(settings: Settings, overrides: dict, code: str, text: str) -> None:
    result = run(settings, "lora", overrides)
    assert codes(result.errors) == [code]
    assert text in result.errors[0].message
    assert result.errors[0].fix


@pytest.mark.parametrize(
    ("template", "overrides", "code"),
    [
        ("lora", {"learning_rate": 5e-8}, "unusually_low"),
        ("lora", {"learning_rate": 5e-3}, "unusually_high"),
        ("lora", {"num_epochs": 20}, "unusually_high"),
        ("lora", {"batch_size": 128}, "unusually_high"),
        ("lora", {"max_seq_length": 128}, "unusually_low"),
        ("lora", {"warmup_ratio": 0.3}, "unusually_high"),
        ("lora", {"weight_decay": 0.5}, "unusually_high"),
        ("lora", {"lora_r": 512, "lora_alpha": 1024}, "unusually_high"),
        ("lora", {"lora_dropout": 0.5}, "unusually_high"),
        ("dpo", {"beta": 0.005}, "unusually_low"),
        ("dpo", {"beta": 1.0}, "unusually_high"),
    ],
)
def test_per_key_warnings(settings: Settings, template: str, overrides: dict, code: str) -> None:
    result = run(settings, template, overrides)
    assert result.valid
    assert code in codes(result.warnings)
    key = next(iter(overrides))
    assert result.config[key] == pytest.approx(overrides[key])  # a warning keeps the value


def test_beta_warning_suggests_the_recommended_value(settings: Settings) -> None:
    (warning,) = run(settings, "dpo", {"beta": 1.0}).warnings
    assert warning.fix == "Keep it if intended; otherwise set beta to 0.1, the usual value."


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("num_train_epochs", "num_epochs"),  # TRL's name, an alias
        ("micro_batch_size", "batch_size"),  # Axolotl's name, an alias
        ("Learning_Rate", "learning_rate"),  # case
        ("lerning_rate", "learning_rate"),  # typo
        ("dpo_beta", "beta"),
    ],
)
def test_unknown_key_is_an_error_with_did_you_mean(
    settings: Settings, key: str, suggestion: str
) -> None:
    result = run(settings, "lora", {key: 2})
    (error,) = result.errors
    assert error.code == "unknown_key" and error.keys == [key]
    assert error.message == f"Unknown key '{key}'. Did you mean '{suggestion}'?"
    assert key not in result.config


def test_unknown_key_without_a_near_name_lists_the_keys(settings: Settings) -> None:
    (error,) = run(settings, "lora", {"zzzz": 1}).errors
    assert error.message == "Unknown key 'zzzz'."
    assert "learning_rate" in (error.fix or "") and "package://templates" in (error.fix or "")


# --- keys that apply only to some methods -------------------------------------------------------


def test_keys_of_another_method_are_left_out_with_a_warning(settings: Settings) -> None:
    full = run(settings, "full", {"lora_r": 8})
    assert full.valid and "lora_r" not in full.config
    (warning,) = full.warnings
    assert warning.code == "not_applicable"
    assert warning.message == "lora_r only applies with adapter lora or qlora, so it was left out."
    lora = run(settings, "lora", {"beta": 0.2})
    assert codes(lora.warnings) == ["not_applicable"] and "beta" not in lora.config


def test_switching_adapter_or_method_brings_in_their_keys(settings: Settings) -> None:
    full_to_lora = run(settings, "full", {"adapter": "lora"})
    assert full_to_lora.valid
    assert full_to_lora.config["lora_r"] == 16 and full_to_lora.provenance["lora_r"] == "default"
    lora_to_full = run(settings, "lora", {"adapter": "none"})
    assert lora_to_full.valid  # LoRA's learning rate is now too high for every weight:
    assert codes(lora_to_full.warnings) == ["full_finetune_learning_rate"]
    assert "lora_r" not in lora_to_full.config
    lora_to_dpo = run(settings, "lora", {"method": "dpo"})
    assert lora_to_dpo.config["beta"] == 0.1 and lora_to_dpo.provenance["beta"] == "default"
    dpo_to_sft = run(settings, "dpo", {"method": "sft"})
    assert "beta" not in dpo_to_sft.config
    assert codes(dpo_to_sft.warnings) == ["lora_learning_rate"]  # DPO's rate is low for SFT


# --- cross-field rules --------------------------------------------------------------------------

FIRES = [
    pytest.param("qlora", {"load_in_4bit": False}, None, "qlora_needs_4bit", id="qlora-16bit"),
    pytest.param("full", {"load_in_4bit": True}, None, "4bit_needs_adapter", id="full-4bit"),
    pytest.param("lora", {"load_in_4bit": True}, None, "4bit_lora_is_qlora", id="lora-4bit"),
    pytest.param("lora", {"fp16": True}, None, "bf16_and_fp16", id="bf16-fp16"),
    pytest.param(
        "lora", {"warmup_ratio": 0.05, "warmup_steps": 10}, None, "warmup_exclusive", id="warmup"
    ),
    pytest.param("lora", {"lora_alpha": 4}, None, "lora_alpha_over_r", id="alpha-low"),
    pytest.param("lora", {"lora_alpha": 128}, None, "lora_alpha_over_r", id="alpha-high"),
    pytest.param(
        "lora",
        {"batch_size": 1, "gradient_accumulation_steps": 2},
        None,
        "effective_batch_size",
        id="batch-low",
    ),
    pytest.param(
        "lora",
        {"batch_size": 32, "gradient_accumulation_steps": 32},
        None,
        "effective_batch_size",
        id="batch-high",
    ),
    pytest.param(
        "lora",
        {"batch_size": 16, "gradient_accumulation_steps": 8},
        target("H100", True, count=8),
        "effective_batch_size",
        id="batch-high-across-8-gpus",
    ),
    pytest.param(
        "full", {"learning_rate": 2e-4}, None, "full_finetune_learning_rate", id="full-lr"
    ),
    pytest.param("lora", {"learning_rate": 5e-6}, None, "lora_learning_rate", id="lora-lr"),
    pytest.param("dpo", {"learning_rate": 1e-4}, None, "dpo_learning_rate", id="dpo-lr"),
    pytest.param("dpo", {}, data("chat"), "dpo_needs_preference_data", id="dpo-chat-data"),
    pytest.param(
        "dpo", {}, data("preference", "alpaca"), "dpo_needs_preference_data", id="dpo-mixed"
    ),
    pytest.param("lora", {}, data("preference"), "sft_needs_sft_data", id="sft-pairs"),
    pytest.param("full", {}, data("unpaired_preference"), "sft_needs_sft_data", id="sft-kto"),
    pytest.param(
        "lora", {}, model(context_length=1024), "max_seq_length_over_context", id="context"
    ),
    pytest.param("lora", {}, target("T4", False), "bf16_unsupported", id="bf16-on-t4"),
]

QUIET = [
    pytest.param("qlora", {}, None, "qlora_needs_4bit", id="qlora"),
    pytest.param("full", {}, None, "4bit_needs_adapter", id="full"),
    pytest.param("lora", {}, None, "4bit_lora_is_qlora", id="lora"),
    pytest.param("lora", {"bf16": False, "fp16": True}, None, "bf16_and_fp16", id="fp16-only"),
    pytest.param("lora", {"warmup_steps": 10}, None, "warmup_exclusive", id="warmup-steps"),
    pytest.param("lora", {"lora_alpha": 8}, None, "lora_alpha_over_r", id="alpha-at-0.5"),
    pytest.param("lora", {"lora_alpha": 64}, None, "lora_alpha_over_r", id="alpha-at-4"),
    pytest.param("full", {}, None, "lora_alpha_over_r", id="alpha-no-adapter"),
    pytest.param(
        "lora",
        {"batch_size": 1, "gradient_accumulation_steps": 4},
        None,
        "effective_batch_size",
        id="batch-at-4",
    ),
    pytest.param(
        "lora", {}, target("H100", True, count=8), "effective_batch_size", id="batch-8-gpus"
    ),
    pytest.param("lora", {"learning_rate": 2e-4}, None, "full_finetune_learning_rate", id="lora"),
    pytest.param("dpo", {}, None, "lora_learning_rate", id="dpo-low-lr-is-normal"),
    pytest.param("full", {"learning_rate": 1e-6}, None, "lora_learning_rate", id="full-low-lr"),
    pytest.param("dpo", {}, None, "dpo_learning_rate", id="dpo"),
    pytest.param("lora", {"learning_rate": 1e-4}, None, "dpo_learning_rate", id="sft-lr"),
    pytest.param("dpo", {}, data("preference"), "dpo_needs_preference_data", id="dpo-pairs"),
    pytest.param(
        "dpo",
        {},
        data("sharegpt_preference", "openai_preference"),
        "dpo_needs_preference_data",
        id="dpo-llama-factory-and-openai-pairs",
    ),
    pytest.param("lora", {}, data("chat", "alpaca"), "sft_needs_sft_data", id="sft-data"),
    pytest.param("dpo", {}, data("preference"), "sft_needs_sft_data", id="sft-rule-skips-dpo"),
    pytest.param(
        "lora", {}, model(context_length=2048), "max_seq_length_over_context", id="context-equal"
    ),
    pytest.param(
        "lora", {"bf16": False, "fp16": True}, target("T4", False), "bf16_unsupported", id="t4-fp16"
    ),
    pytest.param("lora", {}, target("A100-80GB", True), "bf16_unsupported", id="a100"),
    pytest.param(
        "lora",
        {},
        CrossStepFacts(target=TargetFacts(target="local", gpu="mystery", supports_bf16=None)),
        "bf16_unsupported",
        id="unknown-gpu",
    ),
]


@pytest.mark.parametrize(("template", "overrides", "facts", "code"), FIRES)
def test_cross_field_rule_fires(
    settings: Settings, template: str, overrides: dict, facts: CrossStepFacts | None, code: str
) -> None:
    result = run(settings, template, overrides, facts)
    issues = [issue for issue in result.errors + result.warnings if issue.code == code]
    assert len(issues) == 1, (codes(result.errors), codes(result.warnings))
    (issue,) = issues
    assert issue.message and issue.fix and "unset" not in issue.message + issue.fix
    rule = next(rule for rule in settings.templates.cross_field if rule.code == code)
    assert issue.severity == rule.severity
    assert result.valid is (rule.severity == "warning")


@pytest.mark.parametrize(("template", "overrides", "facts", "code"), QUIET)
def test_cross_field_rule_stays_quiet(
    settings: Settings, template: str, overrides: dict, facts: CrossStepFacts | None, code: str
) -> None:
    result = run(settings, template, overrides, facts)
    assert code not in codes(result.errors) + codes(result.warnings)


def test_every_cross_field_rule_has_a_case_that_fires(settings: Settings) -> None:
    """Every rule that finds issues; implications find none (their test is below)."""
    fired = {param.values[3] for param in FIRES}
    rules = settings.templates.cross_field
    assert fired == {rule.code for rule in rules if not isinstance(rule, ImpliesRule)}


# --- implications -------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["lora", "full"])
def test_the_qlora_adapter_implies_a_4bit_base(settings: Settings, template: str) -> None:
    result = run(settings, template, {"adapter": "qlora"})
    assert result.valid, codes(result.errors)
    assert result.config["load_in_4bit"] is True and result.provenance["load_in_4bit"] == "implied"
    assert result.config["bnb_4bit_quant_type"] == "nf4"
    assert result.config["bnb_4bit_use_double_quant"] is True
    assert result.config["lora_r"] == 16
    assert result.notes == [
        "adapter qlora trains LoRA on a 4-bit base, so load_in_4bit is now true "
        "(nf4, double quantisation true)."
    ]


def test_an_explicit_16bit_base_with_qlora_stays_an_error(settings: Settings) -> None:
    result = run(settings, "lora", {"adapter": "qlora", "load_in_4bit": False})
    assert codes(result.errors) == ["qlora_needs_4bit"] and result.notes == []
    assert result.provenance["load_in_4bit"] == "override"
    assert "bnb_4bit_quant_type" not in result.config


def test_a_template_that_already_holds_the_implied_value_is_unchanged(settings: Settings) -> None:
    result = run(settings, "qlora", {"lora_r": 8})
    assert result.provenance["load_in_4bit"] == "template" and result.notes == []


def test_messages_name_the_values_involved(settings: Settings) -> None:
    alpha = run(settings, "lora", {"lora_alpha": 128}).warnings[0]
    assert alpha.message.startswith("lora_alpha / lora_r is 8 (alpha 128, r 16), above 4")
    assert alpha.keys == ["lora_alpha", "lora_r"]
    context = run(settings, "lora", {}, model(context_length=1024)).errors[0]
    assert context.message == (
        "max_seq_length 2048 exceeds the context length of meta-llama/Llama-3.2-1B (1024 tokens)."
    )
    assert context.fix == "Set max_seq_length to 1024 or less."
    bf16 = run(settings, "lora", {}, target("T4", False)).errors[0]
    assert bf16.message == "bf16 is on, but T4-box runs on a T4, which has no bfloat16 support."
    dpo = run(settings, "dpo", {}, data("chat", "preference", "text")).errors[0]
    assert dpo.message.endswith("but step 3 validated [chat, text] data.")


def test_an_override_of_one_warmup_key_replaces_the_templates_other(settings: Settings) -> None:
    result = run(settings, "lora", {"warmup_steps": 50})
    assert result.valid
    assert result.config["warmup_steps"] == 50 and "warmup_ratio" not in result.config
    assert result.notes == [
        "Your warmup_steps replaces the template value warmup_ratio 0.1: the two are exclusive."
    ]


def test_cross_step_checks_wait_for_their_step(settings: Settings) -> None:
    waiting = run(settings, "dpo").pending
    assert len(waiting) == 3
    assert any("validate_datasets" in text for text in waiting)
    assert any("select_model" in text for text in waiting)
    assert any("estimate_deployment" in text for text in waiting)
    facts = CrossStepFacts(
        model=model().model, dataset_formats=["preference"], target=target("H100", True).target
    )
    done = run(settings, "dpo", {}, facts)
    assert done.pending == [] and done.valid and done.warnings == []


# --- derived figures ----------------------------------------------------------------------------


def test_effective_batch_size_counts_the_gpus(settings: Settings) -> None:
    alone = run(settings, "lora").derived
    assert alone.effective_batch_size == 8
    assert alone.effective_batch_size_basis == (
        "batch_size 2 x gradient_accumulation_steps 4 x 1 GPU (one GPU until step 4)"
    )
    spread = run(settings, "lora", {}, target("H100", True, count=4)).derived
    assert spread.effective_batch_size == 32
    assert spread.effective_batch_size_basis.endswith("x 4 GPUs on H100-box")


def test_trainable_share_matches_peft_for_llama_3_2_1b(settings: Settings) -> None:
    # PEFT's print_trainable_parameters for Llama-3.2-1B, r=16 on all linear layers:
    # "trainable params: 11,272,192 || all params: 1,247,086,592 || trainable%: 0.9039"
    derived = run(settings, "lora", {}, model()).derived
    assert derived.trainable_params == 11_272_192
    assert derived.trainable_share == pytest.approx(11_272_192 / 1_247_086_592)
    assert derived.trainable_basis.startswith("LoRA r=16 on q_proj, k_proj, v_proj, o_proj")
    assert derived.lora_alpha_over_r == 2.0


def test_trainable_share_follows_rank_and_target_modules(settings: Settings) -> None:
    qv = run(settings, "lora", {"target_modules": ["q_proj", "v_proj"], "lora_r": 8}, model())
    # r x (d_in + d_out) per layer: q 2048+2048, v 2048+512; 16 layers
    assert qv.derived.trainable_params == 8 * (4096 + 2560) * 16


@pytest.mark.parametrize(
    ("overrides", "facts", "basis"),
    [
        ({}, CrossStepFacts(), "known once select_model has picked a model"),
        ({"target_modules": ["c_attn"]}, model(), "not estimated: c_attn are not Llama-style"),
        ({}, model(num_experts=8), "not estimated for mixture-of-experts models"),
    ],
)
def test_trainable_share_says_why_it_is_unknown(
    settings: Settings, overrides: dict, facts: CrossStepFacts, basis: str
) -> None:
    derived = run(settings, "lora", overrides, facts).derived
    assert derived.trainable_params is None and derived.trainable_share is None
    assert derived.trainable_basis.startswith(basis)


def test_full_fine_tuning_trains_everything(settings: Settings) -> None:
    derived = run(settings, "full", {}, model()).derived
    assert derived.trainable_share == 1.0 and derived.trainable_params == LLAMA_1B_PARAMS
    assert derived.lora_alpha_over_r is None


# --- overrides across calls ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "new", "merged"),
    [
        ({"learning_rate": 1e-4}, {"batch_size": 4}, {"learning_rate": 1e-4, "batch_size": 4}),
        ({"learning_rate": 1e-4}, {"learning_rate": 3e-4}, {"learning_rate": 3e-4}),
        ({"learning_rate": 1e-4, "lora_r": 8}, {"learning_rate": None}, {"lora_r": 8}),
        ({"warmup_ratio": 0.05}, {"warmup_steps": 10}, {"warmup_steps": 10}),
        (
            {},
            {"warmup_ratio": 0.05, "warmup_steps": 10},
            {"warmup_ratio": 0.05, "warmup_steps": 10},
        ),
        ({"nonsense": 1}, {"nonsense": None}, {}),
    ],
)
def test_merge_overrides(settings: Settings, previous: dict, new: dict, merged: dict) -> None:
    assert merge_overrides(settings.templates, previous, new) == merged


@pytest.mark.parametrize(
    ("earlier", "template", "carried"),
    [
        (None, "full", []),  # nothing recorded before
        ("lora", "lora", []),  # the same template: nothing is carried anywhere
        ("lora", " LoRA ", []),
        ("lora", "full", ["learning_rate", "lora_r"]),  # batch_size is given again
    ],
)
def test_carried_overrides_are_those_a_switch_keeps(
    settings: Settings, earlier: str | None, template: str, carried: list[str]
) -> None:
    previous = {"learning_rate": 1e-4, "lora_r": 8, "batch_size": 4}
    new = {"batch_size": 2}
    assert carried_overrides(settings.templates, earlier, template, previous, new) == carried


def test_a_carried_override_unlike_the_new_template_is_noted(settings: Settings) -> None:
    """LoRA's learning rate carried into full fine-tuning stays (the user set it), and the note
    names the full template's own value so the assistant can ask; lora_r is left out with its
    warning, a carried value the template shares is not noted."""
    overrides = {"learning_rate": 1e-4, "lora_r": 8, "max_seq_length": 2048, "seed": 7}
    carried = ["learning_rate", "lora_r", "max_seq_length", "seed"]
    result = apply_template(settings.templates, "full", overrides, carried=carried)
    assert result.config["learning_rate"] == 1e-4
    assert result.provenance["learning_rate"] == "override"
    assert result.notes == [
        "learning_rate 0.0001 is carried over from your earlier overrides; the full template's "
        "value is 2e-05. Ask the user which to keep (null takes the template's).",
        "seed 7 is carried over from your earlier overrides; the full template's value is 42. "
        "Ask the user which to keep (null takes the template's).",
    ]
    assert codes(result.warnings) == ["not_applicable"]
    steps = {"warmup_steps": 10}
    unset = apply_template(settings.templates, "full", steps, carried=list(steps))
    assert "the full template leaves it unset" in unset.notes[-1]


# --- the catalog --------------------------------------------------------------------------------


def test_catalog_lists_templates_with_their_effective_defaults(settings: Settings) -> None:
    catalog = describe_templates(settings.templates)
    assert [t.id for t in catalog.templates] == ["lora", "qlora", "full", "dpo"]
    dpo = catalog.templates[-1]
    assert dpo.method == "dpo" and dpo.adapter == "lora" and dpo.defaults["beta"] == 0.1
    assert dpo.description.startswith("Direct Preference Optimization")
    assert catalog.keys["learning_rate"].min == 1e-8
    (one,) = describe_templates(settings.templates, "qlora").templates
    assert one.defaults["load_in_4bit"] is True
