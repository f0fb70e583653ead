"""One description of the run (configs/package.yaml `run`): the trl.yaml a package is written
with and the run estimate_deployment estimates are the same run, template by template."""

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from server.settings import Settings
from tests.test_package_builder import DATA, build, make_inputs
from tools.deployment_estimator.inputs import DraftSections, build_workload
from tools.deployment_estimator.memory import HALF_BYTES, base_bytes, trainable_bytes
from tools.errors import UserError
from tools.package_builder.config import PackageConfig
from tools.trainer_run import DTYPE_BYTES

# Each template with data it trains on (tests/data/datasets).
TEMPLATE_DATA = {
    "lora": "chat.jsonl",
    "qlora": "chat.jsonl",
    "full": "chat.jsonl",
    "dpo": "preference.jsonl",
    "kto": "unpaired_preference.jsonl",
}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    shutil.copytree(DATA, root)
    return root


def written_and_estimated(
    settings: Settings, data_root: Path, tmp_path: Path, template: str, **overrides: Any
) -> tuple[dict[str, Any], Any]:
    """The trl.yaml a package is written with, and the estimator's workload for the same
    draft."""
    inputs = make_inputs(
        settings, data_root, [TEMPLATE_DATA[template]], template=template, **overrides
    )
    build(settings, data_root, inputs, tmp_path / template)
    written = yaml.safe_load((tmp_path / template / settings.package.files.trl_config).read_text())
    draft = DraftSections(
        model=inputs.model.model_dump(mode="json"),
        config={"template": template, "config": dict(inputs.config.config)},
        datasets={  # as the draft records one dataset's report
            "train_tokens": inputs.datasets.train_tokens,
            "token_stats": inputs.datasets.datasets[0].model_dump(mode="json")["token_stats"],
        },
    )
    work = build_workload(
        draft,
        config_json=None,
        training=None,
        train_tokens=None,
        templates=settings.templates,
        run=settings.package.run,
    )
    return written, work


@pytest.mark.parametrize(
    ("template", "overrides"),
    [*((template, {}) for template in TEMPLATE_DATA), ("dpo", {"adapter": "none"})],
)
def test_the_written_trl_yaml_is_the_run_the_estimate_assumes(
    settings: Settings, data_root: Path, tmp_path: Path, template: str, overrides: dict[str, Any]
) -> None:
    """Every setting is read back from the file (a missing key would be TRL's default, which
    the estimate cannot follow): a change on either side fails here."""
    written, work = written_and_estimated(settings, data_root, tmp_path, template, **overrides)
    args, plan, config = written["args"], work.plan, settings.deployment
    # a full fine-tuning reference copy: train.py's in the compute dtype, as estimated
    assert written["reference_in_compute_dtype"] is (
        plan.reference_copy and plan.reference_in_compute_dtype
    )
    assert written["reference_in_compute_dtype"] is (template == "dpo" and "adapter" in overrides)
    dtype = args["model_init_kwargs"]["dtype"]
    assert plan.weights_dtype == dtype
    if plan.kind == "full":
        for gpu in config.gpus.values():  # whatever the card, the weights the package loads
            assert trainable_bytes(plan, gpu, config) == DTYPE_BYTES[dtype]
    else:  # the frozen base loads in the compute dtype (4-bit blocks dequantise to it)
        assert base_bytes(plan) == DTYPE_BYTES[dtype] == HALF_BYTES
    assert args["use_liger_kernel"] is False  # the estimate models TRL's own losses
    if plan.method == "sft":
        assert args["loss_type"] == plan.sft_loss
        assert args["packing"] is plan.packing and args["padding_free"] is False
    else:
        assert args["precompute_ref_log_probs"] is plan.precompute_ref_log_probs
    assert args["max_length"] == plan.max_seq_length
    assert args["per_device_train_batch_size"] == plan.batch_size
    # the final evaluate() runs no larger a batch than the step the estimate fits
    assert args["per_device_eval_batch_size"] == plan.batch_size
    assert args["gradient_checkpointing"] is plan.gradient_checkpointing
    assert args["optim"] == plan.optimizer and args["bf16"] is plan.bf16
    # the validated data's lengths reach the estimate: its longest sizes the padded batches
    assert work.longest_tokens is not None and work.p99_tokens is not None
    assert 0 < work.p99_tokens <= work.longest_tokens


def test_the_run_is_read_from_the_pinned_trl(settings: Settings) -> None:
    values = settings.package.model_dump(mode="json")
    values["run"]["trl_version"] = "1.12.0"
    with pytest.raises(ValidationError, match=r"does not pin trl==1\.12\.0"):
        PackageConfig.model_validate(values)


def test_a_run_the_estimate_does_not_model_is_refused_at_start_up(settings: Settings) -> None:
    """padding_free would be written into trl.yaml but estimated as padded batches: refused."""
    values = settings.package.model_dump(mode="json")
    values["run"]["padding_free"] = True
    with pytest.raises(ValidationError, match="padding_free needs flash attention"):
        PackageConfig.model_validate(values)


def test_the_run_s_settings_are_not_training_keys(settings: Settings) -> None:
    """The package always writes the run's settings, so an estimate of another is refused."""
    model = next(m for m in settings.models.popular if m.id == "Qwen/Qwen2.5-0.5B-Instruct")
    draft = DraftSections(
        model={"model_id": model.id, "architecture": model.architecture.model_dump()}
    )
    with pytest.raises(UserError, match="'sft_loss'"):
        build_workload(
            draft,
            config_json=None,
            training={"adapter": "lora", "sft_loss": "nll"},
            train_tokens=1000,
            templates=settings.templates,
            run=settings.package.run,
        )


@pytest.mark.parametrize(
    ("bf16", "fp16", "dtype"),
    [(True, False, "bfloat16"), (False, True, "float16"), (False, False, "float32")],
)
def test_a_lora_base_is_estimated_in_the_dtype_train_py_loads_it_in(
    settings: Settings, bf16: bool, fp16: bool, dtype: str
) -> None:
    """The exporter loads a LoRA base in the compute dtype: without bf16 or fp16, fp32."""
    model = next(m for m in settings.models.popular if m.id == "Qwen/Qwen2.5-0.5B-Instruct")
    draft = DraftSections(
        model={"model_id": model.id, "architecture": model.architecture.model_dump()}
    )
    work = build_workload(
        draft,
        config_json=None,
        training={"adapter": "lora", "bf16": bf16, "fp16": fp16},
        train_tokens=1000,
        templates=settings.templates,
        run=settings.package.run,
    )
    assert work.plan.weights_dtype == settings.package.run.weights_dtype("lora", bf16, fp16)
    assert work.plan.weights_dtype == dtype
    assert base_bytes(work.plan) == DTYPE_BYTES[dtype]
