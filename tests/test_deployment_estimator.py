"""The deployment estimator as a service: memory, time, cost, targets, ranking, budget, inputs,
the choice and what the draft records, the hardware facts kept between calls."""

from dataclasses import replace
from functools import partial
from typing import Any

import pytest

from server.settings import Settings
from tests.fake_hub import FakeHub
from tests.support import llama_config
from tools.deployment_estimator.catalog import Target, resolve_targets
from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.cost import cloud_cost, local_cost
from tools.deployment_estimator.estimator import Workload, estimate, evaluate, rank, recommend
from tools.deployment_estimator.gpu_names import match_gpu
from tools.deployment_estimator.hardware import HardwareFacts
from tools.deployment_estimator.inputs import DraftSections, build_workload, max_accumulation
from tools.deployment_estimator.live_prices import fetch_live_prices, with_live_prices
from tools.deployment_estimator.local_gpu import LocalHardware, local_hardware, parse_nvidia_smi
from tools.deployment_estimator.memory import GIB, estimate_memory
from tools.deployment_estimator.padding import expected_batch_longest
from tools.deployment_estimator.plan import TrainingPlan
from tools.deployment_estimator.results import DeploymentOption
from tools.deployment_estimator.service import (
    DeploymentOutcome,
    DeploymentRequest,
    EstimatorSetup,
    plan_deployment,
)
from tools.deployment_estimator.shapes import ModelShape
from tools.deployment_estimator.shortlist import shortlist
from tools.deployment_estimator.throughput import estimate_time, training_flops_per_token
from tools.errors import UserError

LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_1B = "meta-llama/Llama-3.2-1B-Instruct"
LLAMA_70B_CONFIG = {
    "model_type": "llama",
    "num_hidden_layers": 80,
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "num_parameters": 70_553_706_496,
}


def shape_of(settings: Settings, model_id: str) -> ModelShape:
    model = next(m for m in settings.models.popular if m.id == model_id)
    return ModelShape(model.architecture, model.params)


def plan(**overrides: Any) -> TrainingPlan:
    values: dict[str, Any] = {
        "adapter": "lora",
        "lora_r": 16,
        "target_modules": "all-linear",
        "batch_size": 2,
        "gradient_accumulation_steps": 4,
        "max_seq_length": 2048,
        "num_epochs": 1,
        "gradient_checkpointing": True,
        "optimizer": "adamw_torch",
    }
    return TrainingPlan(**{**values, **overrides})


def workload(settings: Settings, model_id: str = LLAMA_8B, **overrides: Any) -> Workload:
    shape = shape_of(settings, model_id)
    return Workload(
        shape=shape,
        plan=plan(**overrides),
        train_tokens=10_000_000,
        example_tokens=None,
        model_size_gb=shape.params * 2 / 1e9,
        label=model_id,
    )


def flavors(config: DeploymentConfig, *ids: str) -> list[Target]:
    return resolve_targets(list(ids), config, None)


def run_estimate(settings: Settings, work: Workload, targets: list[Target], budget: float):
    config = settings.deployment
    return estimate(
        work,
        targets,
        budget,
        config,
        alternatives=resolve_targets(None, config, None),
        default_lora_r=16,
        prices="test",
    )


# --- memory ----------------------------------------------------------------------------------


def test_full_fine_tuning_in_bf16_holds_weights_gradients_and_two_adamw_states(
    settings: Settings,
) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_1B)
    memory = estimate_memory(shape, plan(adapter="none"), config.gpus["A100-80GB"], config)
    assert memory.weights_gb == pytest.approx(shape.params * 2 / GIB)
    assert memory.gradients_gb == pytest.approx(shape.params * 2 / GIB)
    assert memory.optimizer_gb == pytest.approx(shape.params * 4 / GIB)
    assert memory.trainable_params == shape.params


def test_without_bf16_full_fine_tuning_keeps_fp32_master_weights(settings: Settings) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_1B)
    memory = estimate_memory(shape, plan(adapter="none"), config.gpus["T4"], config)
    assert memory.weights_gb == pytest.approx(shape.params * 4 / GIB)
    assert memory.optimizer_gb == pytest.approx(shape.params * 8 / GIB)


def test_an_8bit_optimizer_keeps_one_byte_per_state(settings: Settings) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_1B)
    full = plan(adapter="none", optimizer="adamw_8bit")
    memory = estimate_memory(shape, full, config.gpus["A100-80GB"], config)
    assert memory.optimizer_gb == pytest.approx(shape.params * 2 / GIB)


def test_lora_on_all_linear_layers_of_llama_3_8b_trains_peft_s_41_9m_weights(
    settings: Settings,
) -> None:
    # PEFT's print_trainable_parameters for Llama-3-8B, r=16, all seven projections.
    shape = shape_of(settings, LLAMA_8B)
    assert plan(lora_r=16).adapter_params(shape) == 41_943_040
    assert plan(lora_r=16, target_modules=["q_proj", "v_proj"]).adapter_params(shape) == (
        16 * 32 * ((4096 + 4096) + (4096 + 1024))
    )


def test_qlora_stores_projections_in_nf4_and_the_rest_in_fp32(settings: Settings) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_8B)
    memory = estimate_memory(
        shape, plan(adapter="qlora", load_in_4bit=True), config.gpus["L4"], config
    )
    quantised = shape.block_linear_params
    expected = quantised * 4.127 / 8 + (shape.params - quantised) * 4
    assert quantised == 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    assert memory.weights_gb == pytest.approx(expected / GIB)
    lora = estimate_memory(shape, plan(), config.gpus["L4"], config)
    assert memory.weights_gb < 0.5 * lora.weights_gb


def test_gradient_checkpointing_keeps_one_hidden_state_per_layer(settings: Settings) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_8B)
    gpu = config.gpus["H100"]
    with_gc = estimate_memory(shape, plan(gradient_checkpointing=True), gpu, config)
    without = estimate_memory(shape, plan(gradient_checkpointing=False), gpu, config)
    tokens = 2 * 2048
    layer_inputs = shape.layers * 2 * shape.hidden * tokens / GIB
    assert with_gc.activations_gb > layer_inputs
    assert with_gc.activations_gb < layer_inputs + without.activations_gb / shape.layers * 1.5
    assert without.activations_gb > 5 * with_gc.activations_gb


def test_logits_buffer_is_tokens_times_vocabulary(settings: Settings) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_8B)
    memory = estimate_memory(
        shape, plan(batch_size=3, max_seq_length=1000), config.gpus["H100"], config
    )
    assert memory.logits_gb == pytest.approx(3 * 1000 * 128256 * 14 / GIB)


def test_a_lora_base_loaded_in_fp32_holds_four_bytes_a_weight(settings: Settings) -> None:
    """PEFT's bloomz-7b1 LoRA (loaded without a dtype, no autocast) measured 29.8 GiB."""
    config = settings.deployment
    shape, gpu = shape_of(settings, LLAMA_8B), config.gpus["A100-80GB"]
    fp32 = estimate_memory(shape, plan(bf16=False, weights_dtype="float32"), gpu, config)
    assert fp32.weights_gb == pytest.approx(shape.params * 4 / GIB)
    base_16 = estimate_memory(shape, plan(bf16=False), gpu, config)  # the checkpoint's bf16
    assert base_16.weights_gb == pytest.approx(shape.params * 2 / GIB)
    autocast = estimate_memory(shape, plan(weights_dtype="float32"), gpu, config)
    assert autocast.weights_gb == fp32.weights_gb


def test_without_autocast_activations_and_logits_are_the_weights_dtype(settings: Settings) -> None:
    """TRL #3168: Qwen2.5-0.5B full DPO in fp32 without autocast ran out of 80 GB."""
    config = settings.deployment
    shape, gpu = shape_of(settings, LLAMA_1B), config.gpus["A100-80GB"]

    def memory(**changes: Any) -> Any:
        full = plan(adapter="none", gradient_checkpointing=False, weights_dtype="float32")
        return estimate_memory(shape, full.with_changes(**changes), gpu, config)

    fp32, autocast = memory(bf16=False), memory()
    casts = (shape.block_linear_params + shape.vocab * shape.hidden) * 2 / GIB
    assert fp32.activations_gb == pytest.approx(2 * (autocast.activations_gb - casts), rel=0.1)
    tokens = 2 * 2048
    # 4-byte logits need no fp32 copy: 12 bytes a value where autocast's keep 14
    assert fp32.logits_gb == pytest.approx(tokens * shape.vocab * 12 / GIB)
    assert autocast.logits_gb == pytest.approx(tokens * shape.vocab * 14 / GIB)
    # DPO's 16-bit logit buffers double
    dpo_fp32, dpo = memory(bf16=False, method="dpo"), memory(method="dpo")
    assert dpo_fp32.logits_gb == pytest.approx(2 * dpo.logits_gb)


def test_a_run_without_mixed_precision_is_told_what_it_costs(settings: Settings) -> None:
    targets = [Target("local", "local", "A100-80GB", 1)]
    fp32 = run_estimate(
        settings, workload(settings, bf16=False, weights_dtype="float32"), targets, 1e6
    )
    assert any("no bf16/fp16" in n and "(float32)" in n for n in fp32.notes)
    bf16 = run_estimate(settings, workload(settings), targets, 1e6)
    assert not any("no bf16/fp16" in n for n in bf16.notes)


def test_activations_grow_linearly_with_sequence_length(settings: Settings) -> None:
    config = settings.deployment
    shape, gpu = shape_of(settings, LLAMA_1B), config.gpus["H100"]
    short = estimate_memory(
        shape, plan(gradient_checkpointing=False, max_seq_length=1024), gpu, config
    )
    long = estimate_memory(
        shape, plan(gradient_checkpointing=False, max_seq_length=4096), gpu, config
    )
    assert long.activations_gb == pytest.approx(4 * short.activations_gb, rel=0.01)


def test_peak_adds_allocator_reserve_and_cuda_context(settings: Settings) -> None:
    config = settings.deployment
    memory = estimate_memory(shape_of(settings, LLAMA_1B), plan(), config.gpus["L4"], config)
    assert memory.reserved_gb == pytest.approx(
        memory.allocated_gb * (1 + config.memory.allocator_overhead)
    )
    assert memory.peak_gb == pytest.approx(memory.reserved_gb + config.memory.cuda_context_gb)


def test_dpo_runs_both_answers_and_a_full_dpo_keeps_a_reference_copy(settings: Settings) -> None:
    config = settings.deployment
    shape, gpu = shape_of(settings, LLAMA_1B), config.gpus["H100"]
    sft = estimate_memory(shape, plan(adapter="none"), gpu, config)
    dpo = estimate_memory(shape, plan(adapter="none", method="dpo"), gpu, config)
    per_value = (
        config.memory.preference_logits_bytes_per_value / config.memory.logits_bytes_per_value
    )
    assert dpo.logits_gb == pytest.approx(2 * sft.logits_gb * per_value)  # two answers, row-wise
    assert dpo.weights_gb == pytest.approx(sft.weights_gb + shape.params * 2 / GIB)
    lora_dpo = estimate_memory(shape, plan(method="dpo"), gpu, config)
    assert lora_dpo.weights_gb == estimate_memory(shape, plan(), gpu, config).weights_gb
    reference_pass = training_flops_per_token(shape, plan(method="dpo"), 512) - (
        training_flops_per_token(shape, plan(), 512)
    )
    matmul = shape.block_linear_params + shape.vocab * shape.hidden
    assert reference_pass == 2 * matmul + 2 * 512 * shape.q_dim * shape.layers


def test_kto_trains_one_answer_and_scores_it_three_more_times(settings: Settings) -> None:
    """TRL's KTOTrainer: one sequence with gradients (no pair), then the policy over the
    mismatched KL completion and the reference over both, without gradients; a full KTO run
    keeps a frozen reference copy, as DPO's does."""
    config = settings.deployment
    shape, gpu = shape_of(settings, LLAMA_1B), config.gpus["H100"]
    sft = estimate_memory(shape, plan(adapter="none"), gpu, config)
    kto = estimate_memory(shape, plan(adapter="none", method="kto"), gpu, config)
    per_value = (
        config.memory.preference_logits_bytes_per_value / config.memory.logits_bytes_per_value
    )
    assert kto.logits_gb == pytest.approx(sft.logits_gb * per_value)
    assert kto.activations_gb == pytest.approx(sft.activations_gb)
    assert kto.weights_gb == pytest.approx(sft.weights_gb + shape.params * 2 / GIB)
    lora_kto = estimate_memory(shape, plan(method="kto"), gpu, config)
    assert lora_kto.weights_gb == estimate_memory(shape, plan(), gpu, config).weights_gb
    extra = training_flops_per_token(shape, plan(method="kto"), 512) - (
        training_flops_per_token(shape, plan(), 512)
    )
    matmul = shape.block_linear_params + shape.vocab * shape.hidden
    assert extra == 3 * (2 * matmul + 2 * 512 * shape.q_dim * shape.layers)


def test_data_parallel_adds_gradient_buckets_and_divides_the_time(settings: Settings) -> None:
    config = settings.deployment
    shape, gpu = shape_of(settings, LLAMA_1B), config.gpus["L40S"]
    full = plan(adapter="none")
    one = estimate_memory(shape, full, gpu, config)
    four = estimate_memory(shape, full, gpu, config, gpu_count=4)
    assert four.buffers_gb == pytest.approx(one.gradients_gb)

    def hours(count: int) -> float:
        return estimate_time(
            shape, full, gpu, config, train_tokens=10**7, example_tokens=None, gpu_count=count
        ).training_hours

    efficiency = config.efficiency.data_parallel_efficiency
    assert hours(4) == pytest.approx(hours(1) / 4 / efficiency)


# --- time --------------------------------------------------------------------------------------


def test_training_flops_follow_6n_for_full_and_4n_for_adapters(settings: Settings) -> None:
    shape = shape_of(settings, LLAMA_8B)
    matmul = shape.block_linear_params + shape.vocab * shape.hidden
    attention = 2 * 1024 * shape.q_dim * shape.layers
    full = training_flops_per_token(shape, plan(adapter="none", gradient_checkpointing=False), 1024)
    assert full == 6 * matmul + 3 * attention
    lora = training_flops_per_token(shape, plan(gradient_checkpointing=False), 1024)
    adapters = plan().adapter_params(shape)
    assert lora == 4 * matmul + 3 * attention + 6 * adapters
    recompute = training_flops_per_token(shape, plan(gradient_checkpointing=True), 1024) - lora
    assert recompute == 2 * (shape.block_linear_params + adapters) + attention


def test_time_scales_with_epochs_and_compute(settings: Settings) -> None:
    config = settings.deployment
    shape = shape_of(settings, LLAMA_8B)

    def hours(gpu: str, epochs: float) -> float:
        return estimate_time(
            shape,
            plan(num_epochs=epochs),
            config.gpus[gpu],
            config,
            train_tokens=5_000_000,
            example_tokens=None,
        ).training_hours

    assert hours("A100-80GB", 3) == pytest.approx(3 * hours("A100-80GB", 1))
    # faster, but by less than its 3.2x peak FLOPS: its bandwidth (elementwise ops) grows 1.6x
    # and the fixed cost per matmul not at all
    speedup = hours("A100-80GB", 1) / hours("H100", 1)
    h100, a100 = config.gpus["H100"], config.gpus["A100-80GB"]
    assert 1.8 < speedup < h100.bf16_tflops / a100.bf16_tflops
    assert hours("A10G", 1) > hours("A100-80GB", 1) * 3


def test_qlora_is_slower_than_lora_and_short_examples_slower_per_token(settings: Settings) -> None:
    config = settings.deployment
    # the A10G: where LitGPT measured QLoRA 1.39-1.44x slower than LoRA
    shape, gpu = shape_of(settings, LLAMA_8B), config.gpus["A10G"]

    def tokens_per_second(training: TrainingPlan, example_tokens: int | None = None) -> float:
        return estimate_time(
            shape, training, gpu, config, train_tokens=1_000_000, example_tokens=example_tokens
        ).tokens_per_second

    lora, qlora = tokens_per_second(plan()), tokens_per_second(plan(adapter="qlora"))
    assert 1.3 < lora / qlora < 1.6
    # 2 x 200 tokens instead of 2 x 2048 costs every model speed, a narrow one the most
    short_8b = tokens_per_second(plan(), example_tokens=200) / lora
    shape = shape_of(settings, LLAMA_1B)
    short_1b = tokens_per_second(plan(), example_tokens=200) / tokens_per_second(plan())
    assert short_8b < 0.9
    assert short_1b < short_8b - 0.1


def test_wider_models_saturate_the_gpu_at_fewer_tokens(settings: Settings) -> None:
    """Qwen's A100 LoRA table: at 256 tokens a micro-batch, 1.8B ran at 0.06 of peak, 7B at
    0.23, 14B at 0.34; a saturation curve in tokens alone gives every width the same share."""
    config = settings.deployment
    a100 = config.gpus["A100-80GB"]

    def mfu(model_id: str, tokens: int, gpu: str = "A100-80GB") -> float:
        return estimate_time(
            shape_of(settings, model_id),
            plan(max_seq_length=tokens, batch_size=1),
            config.gpus[gpu],
            config,
            train_tokens=1_000_000,
            example_tokens=None,
        ).mfu

    assert mfu(LLAMA_8B, 256) > 2 * mfu(LLAMA_1B, 256)
    assert (
        mfu(LLAMA_1B, 256)
        < mfu(LLAMA_1B, 2048)
        < mfu(LLAMA_1B, 8192)
        < config.efficiency.mfu["lora"]
    )
    # the elementwise ops cost more where compute outgrows bandwidth (L40S: 2.7x an A100's
    # FLOPs per byte), so the same micro-batch reaches a smaller share of the L40S's peak
    l40s = config.gpus["L40S"]
    assert l40s.bf16_tflops / l40s.bandwidth_gb_s > 2 * a100.bf16_tflops / a100.bandwidth_gb_s
    assert mfu(LLAMA_8B, 1024, "L40S") < mfu(LLAMA_8B, 1024)


# --- cost ---------------------------------------------------------------------------------------


def test_cloud_bills_every_started_minute_with_start_up_and_download(settings: Settings) -> None:
    config = settings.deployment
    cost = cloud_cost(training_hours=0.5, usd_per_hour=2.5, model_size_gb=16, config=config)
    minutes = config.overheads.startup_minutes + 16 * config.overheads.download_minutes_per_gb + 30
    assert cost.hours == pytest.approx(minutes / 60)
    assert cost.usd == pytest.approx(-(-minutes // 1) * 2.5 / 60)


def test_the_cloud_start_up_every_cloud_option_includes_is_noted_once(settings: Settings) -> None:
    config = settings.deployment
    work = workload(settings)
    result = run_estimate(settings, work, flavors(config, "l4x1", "a100-large"), 1e6)
    setup = config.overheads.startup_minutes
    setup += work.model_size_gb * config.overheads.download_minutes_per_gb
    (note,) = [n for n in result.notes if "start-up" in n]
    assert f"{setup:.1f} min" in note
    assert not any("start-up" in n for o in result.options for n in o.notes)
    mine = run_estimate(settings, work, [Target("local", "local", "L4", 1)], 1e6)
    assert not any("start-up" in n for n in mine.notes)


def test_local_cost_is_the_electricity(settings: Settings) -> None:
    config = settings.deployment
    gpu = config.gpus["RTX-4090"]
    cost = local_cost(training_hours=10, gpu=gpu, gpu_count=2, config=config)
    local = config.local
    kwh = 2 * gpu.tdp_w * local.utilisation * local.pue / 1000 * 10
    assert cost.energy_kwh == pytest.approx(kwh)
    assert cost.usd == pytest.approx(kwh * local.electricity_usd_per_kwh)
    assert cost.hours == 10


# --- targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "gpu"),
    [
        ("NVIDIA GeForce RTX 4090", "RTX-4090"),
        ("rtx 3090", "RTX-3090"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("a100", "A100-80GB"),
        ("Tesla T4", "T4"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA RTX A6000", "RTX-A6000"),
        ("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "RTX-PRO-6000"),
        ("AMD Radeon RX 7900 XTX", None),
    ],
)
def test_gpu_names_resolve_to_the_catalog(settings: Settings, name: str, gpu: str | None) -> None:
    assert match_gpu(name, settings.deployment.gpus) == gpu


def test_default_targets_are_local_and_every_flavor(settings: Settings) -> None:
    config = settings.deployment
    local = Target(id="local", kind="local", gpu="RTX-4090", gpu_count=1)
    targets = resolve_targets(None, config, local)
    assert [t.id for t in targets] == ["local", *config.flavors]
    assert [t.id for t in resolve_targets(None, config, None)] == list(config.flavors)


def test_targets_mix_flavor_ids_and_gpu_names(settings: Settings) -> None:
    targets = resolve_targets(["A100-LARGE", "RTX 4090", "a100-large"], settings.deployment, None)
    assert [(t.id, t.kind, t.gpu) for t in targets] == [
        ("a100-large", "cloud", "A100-80GB"),
        ("RTX-4090", "own", "RTX-4090"),
    ]
    assert targets[0].usd_per_hour == settings.deployment.flavors["a100-large"].usd_per_hour


def test_unknown_hardware_is_a_clear_error_with_the_closest_ids(settings: Settings) -> None:
    with pytest.raises(UserError) as error:
        resolve_targets(["a100-larg"], settings.deployment, None)
    message = str(error.value)
    assert "Unknown hardware 'a100-larg'" in message
    assert "Did you mean a100-large" in message
    assert "t4-small" in message and "RTX-4090" in message


def test_local_without_a_gpu_says_how_to_name_one(settings: Settings) -> None:
    with pytest.raises(UserError, match="No local GPU"):
        resolve_targets(["local"], settings.deployment, None)


def test_nvidia_smi_output_gives_the_local_gpu_and_its_count(settings: Settings) -> None:
    output = "NVIDIA GeForce RTX 4090, 24564\nNVIDIA GeForce RTX 4090, 24564\n"
    names = parse_nvidia_smi(output)
    assert names == ["NVIDIA GeForce RTX 4090"] * 2
    local = local_hardware(settings.deployment, names)
    assert local.target == Target(id="local", kind="local", gpu="RTX-4090", gpu_count=2)
    unknown = local_hardware(settings.deployment, ["AMD Instinct MI300X"])
    assert unknown.target is None and "not in the catalog" in unknown.note
    assert local_hardware(settings.deployment, []).target is None


def test_configured_local_gpu_wins_over_detection(settings: Settings) -> None:
    config = settings.deployment.model_copy(
        update={"local": settings.deployment.local.model_copy(update={"gpu": "L4"})}
    )
    local = local_hardware(config, ["NVIDIA GeForce RTX 4090"])
    assert local.target is not None and local.target.gpu == "L4"


@pytest.mark.parametrize("name", ["RTX 4090", "NVIDIA GeForce RTX 4090", "rtx-4090", "RTX-4090"])
def test_local_gpu_in_the_config_takes_any_name_the_tools_take(
    settings: Settings, name: str
) -> None:
    raw = settings.deployment.model_dump()
    raw["local"]["gpu"] = name
    config = DeploymentConfig.model_validate(raw)
    assert config.local.gpu == "RTX-4090"
    assert local_hardware(config, []).target == Target(
        id="local", kind="local", gpu="RTX-4090", gpu_count=1
    )


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA RTX A6000 Workstation Edition",  # nvidia-smi's words around an alias
        "H100 PCIe 80GB",
        "RTX 4090 D",  # a near miss of a key: another card, refused by both
        "a100-larg",
    ],
)
def test_local_gpu_reads_a_name_as_the_targets_do(settings: Settings, name: str) -> None:
    """Whatever estimate_deployment(targets=[name]) takes as a GPU, local.gpu takes as the
    same GPU; what it refuses, the config refuses."""
    try:
        wanted = resolve_targets([name], settings.deployment, None)[0].gpu
    except UserError:
        wanted = None
    raw = settings.deployment.model_dump()
    raw["local"]["gpu"] = name
    try:
        configured = DeploymentConfig.model_validate(raw).local.gpu
    except ValueError:
        configured = None
    assert configured == wanted


def test_an_unknown_local_gpu_in_the_config_is_refused_at_start_up(settings: Settings) -> None:
    raw = settings.deployment.model_dump()
    raw["local"]["gpu"] = "Voodoo 5"
    with pytest.raises(ValueError, match="Voodoo 5"):
        DeploymentConfig.model_validate(raw)


# --- options, ranking, budget, suggestions -------------------------------------------------


def test_an_oversized_run_does_not_fit_and_ranks_last(settings: Settings) -> None:
    config = settings.deployment
    work = workload(settings, LLAMA_1B, adapter="none", gradient_checkpointing=False)
    result = run_estimate(settings, work, flavors(config, "t4-small", "h200", "a100-large"), 1e6)
    by_target = {o.target: o for o in result.options}
    assert not by_target["t4-small"].fits
    assert by_target["t4-small"].peak_memory_gb > by_target["t4-small"].usable_memory_gb
    assert "out of memory" in by_target["t4-small"].notes[0]
    assert by_target["a100-large"].fits and by_target["h200"].fits
    assert result.options[-1].target == "t4-small"
    assert result.recommended in {"h200", "a100-large"}


def test_options_rank_by_fit_then_compatibility_then_cost_then_time() -> None:
    def option(
        target: str, fits: bool, cost: float, hours: float, compatible: bool = True
    ) -> DeploymentOption:
        return DeploymentOption(
            target=target,
            hardware=target,
            gpu="T4",
            gpu_count=1,
            fits=fits,
            compatible=compatible,
            peak_memory_gb=1,
            usable_memory_gb=2,
            hours=hours,
            cost_usd=cost,
            within_budget=True,
            tokens_per_second=1,
        )

    ranked = rank(
        [
            option("too-small", False, 0.1, 1),
            option("dear", True, 9, 1),
            option("cheap-slow", True, 2, 5),
            option("cheap-fast", True, 2, 3),
            option("cheapest-needs-fp16", True, 1, 1, compatible=False),
        ]
    )
    assert [o.target for o in ranked] == [
        "cheap-fast",
        "cheap-slow",
        "dear",
        "cheapest-needs-fp16",
        "too-small",
    ]
    assert recommend(ranked).target == "cheap-fast"  # never one that needs a config change


def test_each_memory_breakdown_is_given_once_for_the_targets_that_share_it(
    settings: Settings,
) -> None:
    """Full fine-tuning: bf16 GPUs share one breakdown, the T4 (fp32 weights) has its own, and
    data parallelism on any number of GPUs adds the same gradient buckets."""
    config = settings.deployment
    targets = flavors(config, "l4x1", "a100-large", "t4-small", "l4x4", "a10g-largex2")
    result = run_estimate(settings, workload(settings, LLAMA_1B, adapter="none"), targets, 1e6)
    groups = {tuple(g["targets"]): g for g in result.memory_gb}
    assert list(groups) == [("l4x1", "a100-large"), ("t4-small",), ("l4x4", "a10g-largex2")]
    one, fp32, parallel = groups.values()
    assert fp32["weights"] == 2 * one["weights"] and one["buffers"] == 0
    assert parallel["buffers"] == one["gradients"]
    peaks = {o.target: o.peak_memory_gb for o in result.options}
    for group in result.memory_gb:
        parts = sum(v for k, v in group.items() if k not in ("targets", "activations", "logits"))
        backward = max(group["activations"] + group["logits"], group["gradients"])
        for target in group["targets"]:
            assert peaks[target] == pytest.approx(parts - group["gradients"] + backward, abs=0.05)


def test_budget_is_enforced_and_fewer_epochs_suggested(settings: Settings) -> None:
    config = settings.deployment
    work = workload(settings, num_epochs=3)
    targets = flavors(config, "a100-large")
    generous = run_estimate(settings, work, targets, 1000)
    cost = generous.options[0].cost_usd
    assert generous.recommended == "a100-large" and generous.options[0].within_budget

    tight = run_estimate(settings, work, targets, cost / 2)
    assert tight.recommended is None
    assert not tight.options[0].within_budget and tight.options[0].fits
    epochs = next(s for s in tight.suggestions if s.changes[0].startswith("fewer epochs"))
    assert epochs.within_budget and epochs.cost_usd <= cost / 2
    assert 0 < epochs.training["num_epochs"] < 3


def test_nothing_fits_suggests_changes_with_their_figures(settings: Settings) -> None:
    config = settings.deployment
    work = workload(settings, batch_size=4, gradient_checkpointing=False)
    result = run_estimate(settings, work, flavors(config, "t4-small"), 100)
    assert not any(o.fits for o in result.options) and result.recommended is None
    smaller, bigger = result.suggestions
    # the fewest changes, least disruptive first, that make an 8B LoRA fit a 16 GB T4, which
    # has no bf16: fp16 comes with them
    assert smaller.changes == [
        "gradient checkpointing",
        "micro batch 1 with gradient accumulation 16",
        "QLoRA (4-bit base weights)",
        "fp16 instead of bf16",
    ]
    assert smaller.target == "t4-small"
    assert smaller.training == {
        "gradient_checkpointing": True,
        "batch_size": 1,
        "gradient_accumulation_steps": 16,
        "adapter": "qlora",
        "load_in_4bit": True,
        "lora_r": 16,
        "bf16": False,
        "fp16": True,
    }
    assert smaller.peak_memory_gb < result.options[0].usable_memory_gb
    assert bigger.changes == [f"a GPU with more memory: {bigger.target}"]
    gpu = config.gpus[config.flavors[bigger.target].gpu]
    assert result.options[0].peak_memory_gb < gpu.memory_gb
    assert all(s.hours > 0 and s.cost_usd > 0 for s in result.suggestions)


def test_a_70b_model_fits_80_gb_only_in_4_bit(settings: Settings) -> None:
    config = settings.deployment
    work = build_workload(
        DraftSections(),
        config_json=LLAMA_70B_CONFIG,
        training={"adapter": "lora", "batch_size": 1, "max_seq_length": 2048},
        train_tokens=1_000_000,
        templates=settings.templates,
        run=settings.package.run,
    )
    qlora = replace(work, plan=work.plan.with_changes(adapter="qlora", load_in_4bit=True))
    targets = flavors(config, "a100-large", "h200", "l40sx1")
    lora_fits = {o.target: o.fits for o in evaluate(work, targets, 1e6, config).options}
    qlora_fits = {o.target: o.fits for o in evaluate(qlora, targets, 1e6, config).options}
    assert lora_fits == {"a100-large": False, "h200": False, "l40sx1": False}
    assert qlora_fits == {"a100-large": True, "h200": True, "l40sx1": False}


# --- inputs ------------------------------------------------------------------------------


def test_missing_steps_are_named_with_the_tool_that_fills_them(settings: Settings) -> None:
    with pytest.raises(UserError) as error:
        build_workload(
            DraftSections(),
            config_json=None,
            training=None,
            train_tokens=None,
            templates=settings.templates,
            run=settings.package.run,
        )
    message = str(error.value)
    assert "select_model" in message and "apply_template" in message
    assert "validate_datasets" in message


def test_explicit_values_override_the_draft(settings: Settings) -> None:
    model = next(m for m in settings.models.popular if m.id == LLAMA_1B)
    draft = DraftSections(
        model={
            "model_id": model.id,
            "params": model.params,
            "size_gb": 2.5,
            "architecture": model.architecture.model_dump(),
        },
        config={
            "template": "lora",
            "config": {"adapter": "lora", "batch_size": 2, "lora_r": 16, "num_epochs": 3},
        },
        datasets={"train_tokens": 1000, "token_stats": {"mean": 180.4}},
    )
    from_draft = build_workload(
        draft,
        config_json=None,
        training=None,
        train_tokens=None,
        templates=settings.templates,
        run=settings.package.run,
    )
    assert from_draft.plan.batch_size == 2 and from_draft.train_tokens == 1000
    assert from_draft.example_tokens == 180 and from_draft.model_size_gb == 2.5
    assert from_draft.shape.params == model.params and from_draft.label == LLAMA_1B

    overridden = build_workload(
        draft,
        config_json={"num_hidden_layers": 32},
        training={"batch_size": 8, "adapter": "qlora"},
        train_tokens=5000,
        templates=settings.templates,
        run=settings.package.run,
    )
    assert overridden.plan.batch_size == 8 and overridden.plan.kind == "qlora"
    assert overridden.plan.num_epochs == 3 and overridden.train_tokens == 5000
    assert overridden.shape.layers == 32 and overridden.shape.hidden == 2048


def test_explicit_training_takes_the_matching_template_s_starting_values(
    settings: Settings,
) -> None:
    work = build_workload(
        DraftSections(),
        config_json=LLAMA_70B_CONFIG,
        training={"adapter": "qlora"},
        train_tokens=10,
        templates=settings.templates,
        run=settings.package.run,
    )
    qlora = settings.templates.templates["qlora"].defaults
    assert work.plan.optimizer == qlora["optimizer"]
    assert work.plan.max_seq_length == qlora["max_seq_length"]
    assert work.shape.params == LLAMA_70B_CONFIG["num_parameters"]
    kto = build_workload(
        DraftSections(),
        config_json=LLAMA_70B_CONFIG,
        training={"method": "kto"},
        train_tokens=10,
        templates=settings.templates,
        run=settings.package.run,
    )
    assert kto.plan.method == "kto" and kto.plan.batch_size == 2
    assert kto.plan.max_seq_length == settings.templates.templates["kto"].defaults["max_seq_length"]


def test_a_misspelt_training_key_is_reported_with_the_right_one(settings: Settings) -> None:
    with pytest.raises(UserError, match="'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        build_workload(
            DraftSections(),
            config_json=LLAMA_70B_CONFIG,
            training={"batchsize": 4},
            train_tokens=10,
            templates=settings.templates,
            run=settings.package.run,
        )


def test_training_values_outside_the_templates_limits_are_refused(settings: Settings) -> None:
    """A caller's batch_size of a billion, which no package can run, is refused as
    apply_template refuses it; estimated, the micro-batch fix would count down from it for
    minutes on the server's event loop."""
    with pytest.raises(UserError, match="batch_size 1000000007 is above the maximum of 4096"):
        build_workload(
            DraftSections(),
            config_json=LLAMA_70B_CONFIG,
            training={"adapter": "lora", "batch_size": 10**9 + 7},
            train_tokens=10,
            templates=settings.templates,
            run=settings.package.run,
        )


def test_unknown_target_modules_are_a_user_error(settings: Settings) -> None:
    with pytest.raises(UserError, match="c_attn"):
        plan(target_modules=["c_attn"]).lora_modules(shape_of(settings, LLAMA_8B))


# --- live prices -------------------------------------------------------------------------


def test_live_prices_replace_the_yaml_ones_they_cover(
    settings: Settings, fake_hub: tuple[FakeHub, str]
) -> None:
    _, url = fake_hub
    live = fetch_live_prices(url, token=None)
    assert [(p.flavor, p.usd_per_hour) for p in live] == [("a100-large", 2.1)]
    config = with_live_prices(settings.deployment, live)
    assert config.flavors["a100-large"].usd_per_hour == 2.1
    assert config.flavors["t4-small"] == settings.deployment.flavors["t4-small"]


# --- the service: budget, choice, the step -----------------------------------------------------

NO_LOCAL = LocalHardware(target=None, note="no local GPU")


def request(**fields: Any) -> DeploymentRequest:
    values: dict[str, Any] = {
        "architecture": LLAMA_70B_CONFIG,
        "training": {"adapter": "qlora", "lora_r": 16},
        "train_tokens": 50_000_000,
    }
    return DeploymentRequest(**{**values, **fields})


def planned(settings: Settings, **fields: Any) -> DeploymentOutcome:
    setup = EstimatorSetup(
        settings.deployment, settings.templates, settings.package.run, NO_LOCAL, prices="p"
    )
    return plan_deployment(request(**fields), setup)


def test_over_budget_the_question_comes_back_when_nobody_could_be_asked(
    settings: Settings,
) -> None:
    outcome = planned(settings, budget_usd=0.01)
    answer = outcome.answer
    assert answer.recommended is None and answer.selected is None
    question = answer.budget_question
    assert question is not None and "over the 0.01 USD budget" in question.question
    assert not outcome.step.ready
    assert [i.code for i in outcome.step.issues] == ["deployment.not_selected"]
    asked = planned(settings, budget_usd=0.01, budget_answer="keep")  # asked: they said no
    assert asked.answer.budget_question is None and asked.answer.selected is None


def test_raising_the_budget_takes_the_cheapest_within_the_new_budget(settings: Settings) -> None:
    question = planned(settings, budget_usd=0.01).answer.budget_question
    assert question is not None
    raised = planned(settings, budget_usd=0.01, budget_answer="raise_budget").answer
    assert raised.selected is not None and raised.selected.target == question.cheapest
    assert raised.selected.within_budget and raised.budget_usd >= question.cheapest_cost_usd
    taken = planned(settings, budget_usd=0.01, budget_answer="take_cheapest")
    assert taken.answer.selected is not None and not taken.answer.selected.within_budget
    assert [i.code for i in taken.step.issues] == ["deployment.over_budget"]
    assert taken.step.ready and taken.step.payload["selected"]["target"] == question.cheapest


def test_a_choice_is_checked_and_a_remembered_one_that_no_longer_fits_is_dropped(
    settings: Settings,
) -> None:
    with pytest.raises(UserError, match=r"does not fit: .* Pick \S+, which fits\."):
        planned(settings, select="t4-small")
    with pytest.raises(UserError, match="not among the estimated options"):
        planned(settings, select="nothing-like-it")
    chosen = planned(settings, select="a100-large")
    assert chosen.answer.selected is not None and chosen.step.ready
    remembered = chosen.step.payload
    assert planned(settings, recorded=remembered).answer.selected == chosen.answer.selected
    stale = {**remembered, "selected": {"target": "t4-small"}}
    dropped = planned(settings, recorded=stale)
    assert dropped.answer.selected is None
    assert dropped.answer.notes[-1].startswith("the draft's choice t4-small was dropped: ")
    assert "no longer fits" in dropped.answer.notes[-1]
    assert planned(settings, recorded=remembered).answer.budget_usd == remembered["budget_usd"]


# A 1B LoRA run that fits everywhere; its cheapest option is a T4, which has no bf16.
SMALL_RUN = {
    "architecture": llama_config(),
    "training": {"adapter": "lora", "lora_r": 16, "max_seq_length": 1024},
    "train_tokens": 2_000_000,
}
FP16 = {"bf16": False, "fp16": True}


def every_option(settings: Settings) -> list[DeploymentOption]:
    """SMALL_RUN's options on every flavor, in full (an answer lists a line for some)."""
    return planned(settings, **SMALL_RUN, targets=list(settings.deployment.flavors)).answer.options


def test_a_choice_that_cannot_run_the_config_is_refused_with_the_fix(settings: Settings) -> None:
    """bf16 on a T4 would be recorded, then fail in finalize_package: refused when chosen."""
    answer = planned(settings, **SMALL_RUN).answer
    t4 = next(o for o in every_option(settings) if o.target == "t4-small")
    assert t4.fits and not t4.compatible and answer.recommended
    with pytest.raises(UserError) as refused:
        planned(settings, **SMALL_RUN, select="t4-small")
    assert str(refused.value) == (
        "t4-small runs on a T4, which has no bf16 (the config has bf16 on): apply_template "
        f'with overrides {{"bf16": false, "fp16": true}}, or pick {answer.recommended}.'
    )
    fp16 = {**SMALL_RUN, "training": {**SMALL_RUN["training"], **FP16}}
    chosen = planned(settings, **fp16, select="t4-small")
    assert chosen.answer.selected is not None and chosen.step.ready


def test_a_remembered_choice_the_config_no_longer_runs_on_is_dropped_with_why(
    settings: Settings,
) -> None:
    fp16 = {**SMALL_RUN, "training": {**SMALL_RUN["training"], **FP16}}
    remembered = planned(settings, **fp16, select="t4-small").step.payload
    outcome = planned(settings, **SMALL_RUN, recorded=remembered)  # bf16 on again
    assert outcome.answer.selected is None and not outcome.step.ready
    note = outcome.answer.notes[-1]
    assert note.startswith("the draft's choice t4-small was dropped: its T4 has no bf16")
    assert '{"bf16": false, "fp16": true}' in note
    (issue,) = outcome.step.issues
    assert issue.code == "deployment.not_selected" and note in issue.message


def test_the_budget_question_states_the_cheapest_cost_and_raising_sets_exactly_it(
    settings: Settings,
) -> None:
    answer = planned(settings, **SMALL_RUN, budget_usd=0.05).answer
    question = answer.budget_question
    assert question is not None
    cheapest = next(o for o in answer.options if o.fits and o.compatible)
    cost = f"{cheapest.cost_usd:.2f}"
    assert question.cheapest == cheapest.target and question.cheapest_cost_usd < 1
    assert f"Raise the budget to {cost} USD and take it" in question.question
    assert question.how.startswith(f"raise budget_usd to {cost} and select {cheapest.target}")
    raised = planned(settings, **SMALL_RUN, budget_usd=0.05, budget_answer="raise_budget")
    assert raised.answer.budget_usd == question.cheapest_cost_usd
    assert raised.answer.selected is not None and raised.answer.selected.within_budget
    assert raised.step.payload["budget_usd"] == question.cheapest_cost_usd


def test_a_cheaper_gpu_that_needs_fp16_is_suggested_and_named_in_the_question(
    settings: Settings,
) -> None:
    everywhere = every_option(settings)
    t4 = next(o for o in everywhere if o.target == "t4-small")
    cheapest = next(o for o in everywhere if o.fits and o.compatible)
    assert t4.cost_usd < cheapest.cost_usd
    answer = planned(settings, **SMALL_RUN, budget_usd=t4.cost_usd).answer
    assert answer.recommended is None and answer.budget_question is not None
    fp16 = next(s for s in answer.suggestions if s.training == FP16)
    assert fp16.changes == ["fp16 instead of bf16 on t4-small"] and fp16.target == "t4-small"
    assert (fp16.cost_usd, fp16.hours, fp16.peak_memory_gb) == (
        t4.cost_usd,
        t4.hours,
        t4.peak_memory_gb,
    )
    assert fp16.within_budget
    question = answer.budget_question.question
    assert "Cheaper with a config change: " in question
    assert (
        f"fp16 instead of bf16 on t4-small (t4-small: {t4.cost_usd:.2f} USD, {t4.hours:.2f} h)"
        in (question)
    )


def test_an_answer_lists_in_full_what_is_worth_choosing_and_all_that_was_named(
    settings: Settings,
) -> None:
    everywhere = planned(settings).answer
    assert everywhere.others and len(everywhere.options) + len(everywhere.others) == len(
        settings.deployment.flavors
    )
    named = planned(settings, targets=["a100-large", "t4-small"]).answer
    assert {o.target for o in named.options} == {"a100-large", "t4-small"} and not named.others
    assert named.notes[-1] == NO_LOCAL.note


# --- what is slow to learn about the hardware --------------------------------------------------


def test_live_prices_are_kept_until_they_expire_and_the_yaml_stands_in_on_failure(
    settings: Settings, fake_hub: tuple[FakeHub, str]
) -> None:
    hub, url = fake_hub
    now = [0.0]
    facts = HardwareFacts(clock=lambda: now[0])
    config = settings.deployment.model_copy(
        update={"live_prices": settings.deployment.live_prices.model_copy(update={"enabled": True})}
    )
    priced, note = facts.priced(config, url, None)
    assert priced.flavors["a100-large"].usd_per_hour == 2.1 and "live" in note
    asked = len(hub.requests_to("/api/jobs/hardware"))
    assert facts.priced(config, url, None)[0] is priced  # kept: no new request
    assert len(hub.requests_to("/api/jobs/hardware")) == asked
    now[0] += config.live_prices.cache_ttl_s
    hub.fail("/api/jobs/hardware", status=404, times=10)
    fallback, note = facts.priced(config, url, None)
    assert fallback is config and "did not answer" in note


# --- shortlist -------------------------------------------------------------------------------


def option(target: str, cost: float, hours: float, **fields: Any) -> DeploymentOption:
    values: dict[str, Any] = {
        "target": target,
        "hardware": target,
        "gpu": "L4",
        "gpu_count": 1,
        "fits": True,
        "compatible": True,
        "peak_memory_gb": 10.0,
        "usable_memory_gb": 20.0,
        "hours": hours,
        "cost_usd": cost,
        "within_budget": True,
        "tokens_per_second": 1000,
    }
    return DeploymentOption(**{**values, **fields})


def test_the_shortlist_keeps_what_no_other_beats_on_both_cost_and_time() -> None:
    ranked = [
        option("cheap", 1.0, 4.0),
        option("twin", 1.0, 4.0),  # a tie beats neither: both stay
        option("balanced", 2.0, 1.0),
        option("slower", 2.5, 2.0),  # balanced is cheaper and faster
        option("same-time", 3.0, 1.0),  # balanced is as fast and cheaper
        option("fastest", 5.0, 0.5),
        option("old", 0.5, 6.0, compatible=False),
        option("small", 0.2, 9.0, fits=False, peak_memory_gb=30.0),
        option("mine", 9.0, 9.0, fits=False, peak_memory_gb=30.0),
    ]
    listed, others = shortlist(ranked, keep={"mine"})
    assert [o.target for o in listed] == ["cheap", "twin", "balanced", "fastest", "mine"]
    assert others == [
        "slower: $2.50, 2.00 h",
        "same-time: $3.00, 1.00 h",
        "old: $0.50, 6.00 h, no bf16 (train in fp16)",
        "small: does not fit (30.0 GB per GPU needed, 20.0 usable)",
    ]


def test_when_nothing_fits_the_shortlist_lists_the_nearest_miss() -> None:
    ranked = [
        option("small", 1.0, 1.0, fits=False, peak_memory_gb=90.0),
        option("large", 3.0, 1.0, fits=False, peak_memory_gb=90.0, usable_memory_gb=74.4),
    ]
    listed, others = shortlist(ranked, keep=set())
    assert [o.target for o in listed] == ["large"] and others[0].startswith("small: does not")
    assert shortlist([], keep={"local"}) == ([], [])


# --- the package's run: padding, dtype, reference model, fixes ----------------------------------

LOCAL_4090 = Target(id="local", kind="local", gpu="RTX-4090", gpu_count=1)


def package_work(
    settings: Settings,
    model_id: str,
    template: str,
    stats: dict[str, Any] | None = None,
    histogram: list[list[int]] | None = None,
    **overrides: Any,
) -> Workload:
    """The run a package of `template` makes (configs/package.yaml run), on data with token
    `stats` as validate_datasets records them (None: not validated)."""
    model = next(m for m in settings.models.popular if m.id == model_id)
    datasets: dict[str, Any] = {"train_tokens": (stats or {}).get("total", 1_000_000)}
    if stats:
        datasets["token_stats"] = stats
    if histogram:
        datasets["length_histogram"] = histogram
    draft = DraftSections(
        model={"model_id": model.id, "architecture": model.architecture.model_dump()},
        config={
            "template": template,
            "config": {**settings.templates.starting_values(template), **overrides},
        },
        datasets=datasets,
    )
    return build_workload(
        draft,
        config_json=None,
        training=None,
        train_tokens=None,
        templates=settings.templates,
        run=settings.package.run,
    )


def lengths(mean: int, p99: int, longest: int, count: int = 1000) -> dict[str, Any]:
    return {
        "count": count,
        "mean": float(mean),
        "p50": mean,
        "p95": p99,
        "p99": p99,
        "max": longest,
        "total": mean * count,
    }


def peak_on(settings: Settings, work: Workload, target: str) -> float:
    options = evaluate(work, flavors(settings.deployment, target), 1e6, settings.deployment)
    return options.options[0].peak_memory_gb


def test_batches_are_padded_to_the_data_s_longest_example(settings: Settings) -> None:
    """TRL pads each batch to its longest example: ~40-token examples need far less than
    ~2,000-token ones, and unvalidated data is sized at max_seq_length, as the notes say."""
    qwen = "Qwen/Qwen2.5-1.5B-Instruct"
    short = package_work(settings, qwen, "lora", lengths(40, 58, 62))
    long = package_work(settings, qwen, "lora", lengths(2000, 2046, 2048))
    unknown = package_work(settings, qwen, "lora")
    assert peak_on(settings, short, "a100-large") < 0.8 * peak_on(settings, long, "a100-large")
    assert peak_on(settings, unknown, "a100-large") == peak_on(settings, long, "a100-large")
    cut = package_work(settings, qwen, "lora", lengths(2000, 4000, 9000))  # truncated at 2048
    assert peak_on(settings, cut, "a100-large") == peak_on(settings, long, "a100-large")
    result = run_estimate(settings, unknown, flavors(settings.deployment, "a100-large"), 1e6)
    assert any("no validated data" in note and "2048" in note for note in result.notes)
    assert result.inputs["longest_tokens"] is None
    assert not any(
        "no validated data" in n
        for n in run_estimate(
            settings, short, flavors(settings.deployment, "a100-large"), 1e6
        ).notes
    )


def test_expected_batch_longest_follows_the_empirical_cdf() -> None:
    """Two examples of 100 and 200 tokens, batches of 2 drawn at random: the longest is 100
    only when both are short (1/4), so E = 25 + 150; cut at 150 tokens, 25 + 112.5."""
    assert expected_batch_longest([(100, 1), (200, 1)], 2, 4096) == pytest.approx(175)
    assert expected_batch_longest([(200, 1), (100, 1)], 2, 150) == pytest.approx(137.5)
    assert expected_batch_longest([(300, 50)], 8, 4096) == pytest.approx(300)


def test_time_counts_batches_padded_to_their_longest_example(settings: Settings) -> None:
    """TRL pads each micro-batch to its longest example: in micro-batches of 8, 95% of
    100-token and 5% of 2,100-token examples (mean 200) run ~750-token sequences (cut at 2048),
    longer than 200-token examples of the same total, which keep the unpadded time; an
    explicit train_tokens keeps it too, as the notes say."""
    qwen, target = "Qwen/Qwen2.5-1.5B-Instruct", "a100-large"
    uniform_stats = lengths(200, 200, 200)
    skewed_stats = {**lengths(200, 2100, 2100), "p50": 100, "p95": 2100}
    today = package_work(settings, qwen, "lora", uniform_stats, batch_size=8)
    uniform = package_work(settings, qwen, "lora", uniform_stats, [[200, 1000]], batch_size=8)
    skewed = package_work(
        settings, qwen, "lora", skewed_stats, [[100, 950], [2100, 50]], batch_size=8
    )
    targets = flavors(settings.deployment, target)

    def hours(work: Workload) -> float:
        return evaluate(work, targets, 1e6, settings.deployment).options[0].hours

    assert hours(uniform) == hours(today)
    assert hours(skewed) > 1.25 * hours(uniform)  # small micro-batches: fixed costs weigh
    assert not any("unpadded" in n for n in run_estimate(settings, skewed, targets, 1e6).notes)
    assert any("unpadded" in n for n in run_estimate(settings, today, targets, 1e6).notes)
    explicit = build_workload(
        DraftSections(datasets={"token_stats": skewed_stats, "length_histogram": [[100, 9]]}),
        config_json=llama_config(),
        training={"batch_size": 4},
        train_tokens=200_000,
        templates=settings.templates,
        run=settings.package.run,
    )
    assert explicit.length_histogram is None


def test_sft_logits_follow_trl_s_chunked_loss(settings: Settings) -> None:
    """TRL 1.13's chunked_nll never holds the full logits: on ~2,000-token examples the
    logits cost a fixed chunk, not tokens x vocabulary x 14 bytes."""
    qwen = "Qwen/Qwen2.5-1.5B-Instruct"
    work = package_work(settings, qwen, "lora", lengths(2000, 2046, 2048))
    config, shape = settings.deployment, work.shape
    memory = estimate_memory(shape, work.plan, config.gpus["A100-80GB"], config, longest=2048)
    chunk = config.memory.chunked_nll_chunk_tokens * shape.vocab
    full_logits = 2 * 2048 * shape.vocab * config.memory.logits_bytes_per_value / GIB
    assert memory.logits_gb < full_logits / 5
    assert memory.logits_gb * GIB >= chunk * config.memory.chunked_nll_bytes_per_value


def test_full_fine_tuning_is_estimated_in_the_dtype_the_package_writes(settings: Settings) -> None:
    """The package loads a full fine-tune in float32 (configs/package.yaml run): an 8B model
    needs 18 bytes a weight (fp32 weights, gradients, AdamW states, autocast's bf16 copies),
    beyond any 80 GB card, where bf16 weights would have suggested 65 GB."""
    work = package_work(settings, LLAMA_8B, "full")
    config, shape = settings.deployment, work.shape
    memory = estimate_memory(shape, work.plan, config.gpus["H200"], config)
    assert memory.weights_gb == pytest.approx(shape.params * 4 / GIB)
    assert memory.optimizer_gb == pytest.approx(shape.params * 8 / GIB)
    assert memory.peak_gb > 120
    fits = {
        o.target: o.fits
        for o in evaluate(work, flavors(config, "a100-large", "h200"), 1e6, config).options
    }
    assert fits == {"a100-large": False, "h200": True}
    notes = run_estimate(settings, work, flavors(config, "h200"), 1e6).notes
    assert any(n.startswith("full fine-tuning as train.py loads it: float32") for n in notes)


def test_dpo_s_reference_is_a_bf16_copy_in_full_and_the_base_under_lora(
    settings: Settings,
) -> None:
    """TRL's DPOTrainer: under PEFT the reference is the base with the adapters off (no memory);
    in full fine-tuning a copy, which train.py loads in the compute dtype (bf16) where TRL's
    own would load like the model (float32 master weights); with precomputed log-probs no copy,
    and the reference's forwards once over the data, whatever the number of epochs."""
    config = settings.deployment
    gpu = config.gpus["H200"]
    full = package_work(settings, LLAMA_1B, "dpo", adapter="none")
    sft_full = package_work(settings, LLAMA_1B, "full")
    shape = full.shape
    dpo_memory = estimate_memory(shape, full.plan, gpu, config)
    sft_memory = estimate_memory(shape, sft_full.plan, gpu, config)
    assert dpo_memory.weights_gb == pytest.approx(sft_memory.weights_gb + shape.params * 2 / GIB)
    trl_s_own = full.plan.with_changes(reference_in_compute_dtype=False)
    assert estimate_memory(shape, trl_s_own, gpu, config).weights_gb == pytest.approx(
        sft_memory.weights_gb + shape.params * 4 / GIB
    )
    lora = package_work(settings, LLAMA_1B, "dpo")
    lora_sft = package_work(settings, LLAMA_1B, "lora")
    assert estimate_memory(shape, lora.plan, gpu, config).weights_gb == pytest.approx(
        estimate_memory(shape, lora_sft.plan, gpu, config).weights_gb
    )
    precomputed = full.plan.with_changes(precompute_ref_log_probs=True)
    assert estimate_memory(shape, precomputed, gpu, config).weights_gb == pytest.approx(
        sft_memory.weights_gb
    )
    flops = partial(training_flops_per_token, shape, seq_len=512)
    one, three = (precomputed.with_changes(num_epochs=epochs) for epochs in (1, 3))
    assert flops(one) == pytest.approx(flops(full.plan.with_changes(num_epochs=1)))
    reference_pass = flops(full.plan) - flops(full.plan.with_changes(method="sft"))
    assert flops(three) == pytest.approx(flops(one) - reference_pass * 2 / 3)


def test_a_local_gpu_that_does_not_fit_gets_its_fix_when_a_cloud_option_fits(
    settings: Settings,
) -> None:
    """8B DPO LoRA on a 24 GB 4090: the cloud has fitting options, and the 4090 still gets the
    smallest change that fits it - micro batch 1 with the same effective batch of 8."""
    config = settings.deployment
    work = package_work(settings, LLAMA_8B, "dpo", lengths(600, 1010, 1400))
    targets = [LOCAL_4090, *flavors(config, "l40sx1", "a100-large")]
    result = estimate(
        work, targets, 1e6, config, alternatives=targets, default_lora_r=16, prices="test"
    )
    local = next(o for o in result.options if o.target == "local")
    assert result.recommended is not None and not local.fits
    (fix,) = [s for s in result.suggestions if s.target == "local"]
    assert fix.changes == ["micro batch 1 with gradient accumulation 8"]
    assert fix.training == {"batch_size": 1, "gradient_accumulation_steps": 8}
    assert fix.peak_memory_gb < local.usable_memory_gb and fix.hours > local.hours * 0.9


def test_a_micro_batch_fix_keeps_accumulation_within_what_apply_template_accepts(
    settings: Settings,
) -> None:
    """The 4090 case above with the templates' largest accumulation already set: micro batch 1
    would need 8 times it, a value apply_template refuses, so the fix is another change."""
    config, cap = settings.deployment, max_accumulation(settings.templates)
    work = package_work(
        settings, LLAMA_8B, "dpo", lengths(600, 1010, 1400), gradient_accumulation_steps=cap
    )
    targets = [LOCAL_4090, *flavors(config, "l40sx1", "a100-large")]
    result = estimate(
        work,
        targets,
        1e6,
        config,
        alternatives=targets,
        default_lora_r=16,
        prices="test",
        max_accumulation=cap,
    )
    (fix,) = [s for s in result.suggestions if s.target == "local"]
    assert fix.training.get("gradient_accumulation_steps", cap) <= cap
    assert (
        fix.peak_memory_gb < next(o for o in result.options if o.target == "local").usable_memory_gb
    )


def test_a_length_fix_comes_from_the_data_s_99th_percentile_never_halving(
    settings: Settings,
) -> None:
    config = settings.deployment
    few_long = lengths(700, 1800, 8000)  # a few examples run to 8,000 tokens
    work = package_work(
        settings,
        LLAMA_8B,
        "lora",
        few_long,
        max_seq_length=8192,
        batch_size=1,
        gradient_accumulation_steps=8,
    )
    targets = [LOCAL_4090, *flavors(config, "l40sx1")]
    result = estimate(
        work, targets, 1e6, config, alternatives=targets, default_lora_r=16, prices="test"
    )
    (fix,) = [s for s in result.suggestions if s.target == "local"]
    assert fix.training == {"max_seq_length": 1800}
    assert fix.changes == [
        "max_seq_length 1800, from the data's 99th percentile: longer examples "
        "(at most 1%, up to 8000 tokens) are truncated"
    ]
    unvalidated = package_work(
        settings,
        LLAMA_8B,
        "lora",
        max_seq_length=8192,
        batch_size=1,
        gradient_accumulation_steps=8,
    )
    result = estimate(
        unvalidated, targets, 1e6, config, alternatives=targets, default_lora_r=16, prices="t"
    )
    lines = [line for s in result.suggestions for line in s.changes]
    assert lines and not any(line.startswith("max_seq_length") for line in lines)
    assert all(" + " not in line for line in lines)  # one change a line


def test_over_budget_the_local_fix_is_the_cheaper_way_the_question_offers(
    settings: Settings,
) -> None:
    """Every fitting cloud option costs more than the budget; the local 4090 does not fit as
    configured, but with its fix it does, for electricity: the question says so."""
    model = next(m for m in settings.models.popular if m.id == LLAMA_8B)
    draft = DraftSections(
        model={"model_id": model.id, "architecture": model.architecture.model_dump()},
        config={"template": "dpo", "config": settings.templates.starting_values("dpo")},
        datasets={"train_tokens": 3_000_000, "token_stats": lengths(600, 1010, 1400, 5000)},
    )
    local = LocalHardware(target=LOCAL_4090, note="local GPU from the config: 1x RTX-4090")
    setup = EstimatorSetup(
        settings.deployment, settings.templates, settings.package.run, local, prices="p"
    )
    answer = plan_deployment(DeploymentRequest(sections=draft, budget_usd=0.5), setup).answer
    assert answer.recommended is None and answer.budget_question is not None
    fix = next(s for s in answer.suggestions if s.target == "local")
    assert fix.within_budget and fix.cost_usd < answer.budget_question.cheapest_cost_usd
    assert "micro batch 1 with gradient accumulation 8 (local: " in answer.budget_question.question


def test_a_chosen_target_that_does_not_fit_is_refused_with_its_own_fix(settings: Settings) -> None:
    model = next(m for m in settings.models.popular if m.id == LLAMA_8B)
    draft = DraftSections(
        model={"model_id": model.id, "architecture": model.architecture.model_dump()},
        config={"template": "dpo", "config": settings.templates.starting_values("dpo")},
        datasets={"train_tokens": 3_000_000, "token_stats": lengths(600, 1010, 1400, 5000)},
    )
    setup = EstimatorSetup(
        settings.deployment, settings.templates, settings.package.run, NO_LOCAL, prices="p"
    )
    with pytest.raises(UserError) as error:
        plan_deployment(DeploymentRequest(sections=draft, select="a10g-small"), setup)
    message = str(error.value)
    assert "a10g-small does not fit" in message
    assert "or keep a10g-small and apply_template with overrides" in message
