"""The run to estimate, from a draft's earlier steps, the caller's explicit values, or both.

Explicit values override the draft's: `architecture` (config.json keys, `config_json` here)
overlays the selected model's config, `training` keys override the applied template's,
`train_tokens` the validated datasets' count. Template keys neither gives take the starting
values of the applied template, or of the template that matches `training` (dpo, kto, full,
qlora, lora) in configs/templates.yaml.
"""

from dataclasses import dataclass, field
from typing import Any

from tools.deployment_estimator.estimator import Workload
from tools.deployment_estimator.plan import TrainingPlan, plan_from_keys
from tools.deployment_estimator.shapes import ModelShape
from tools.errors import UserError
from tools.model_browser.architecture import architecture_from_config, count_parameters
from tools.model_browser.config import Architecture
from tools.template_loader.config import TemplatesConfig
from tools.trainer_run import TrainerRun

HALF_BYTES = 2
BYTES_PER_GB = 1e9  # the Hub's model sizes are decimal GB
PARAM_KEYS = ("num_parameters", "params")


@dataclass(frozen=True)
class DraftSections:
    """The payloads of a draft's first three steps ({} where a step is still empty)."""

    model: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] = field(default_factory=dict)


def build_workload(
    draft: DraftSections,
    *,
    config_json: dict[str, Any] | None,
    training: dict[str, Any] | None,
    train_tokens: int | None,
    templates: TemplatesConfig,
    run: TrainerRun,
) -> Workload:
    """The Workload to estimate; UserError naming every missing input and the step that gives it."""
    missing = []
    if not config_json and not draft.model.get("architecture"):
        missing.append("a model (select_model, or pass architecture with config.json keys)")
    if not training and not draft.config.get("config"):
        missing.append("training settings (apply_template, or pass training with template keys)")
    tokens = train_tokens or draft.datasets.get("train_tokens")
    if not tokens:
        missing.append("the training token count (validate_datasets, or pass train_tokens)")
    if missing:
        raise UserError("Cannot estimate yet; missing " + "; ".join(missing) + ".")

    given = {**draft.config.get("config", {}), **(training or {})}
    base = _starting_values(templates, draft.config.get("template"), given)
    plan = plan_from_keys({**base, **given}, templates.keys, run)
    shape = _shape(draft.model, config_json, plan)
    size_gb = draft.model.get("size_gb") if not config_json else None
    return Workload(
        shape=shape,
        plan=plan,
        train_tokens=int(tokens),
        example_tokens=_mean_example_tokens(draft.datasets),
        model_size_gb=size_gb or shape.params * HALF_BYTES / BYTES_PER_GB,
        label=_label(draft.model, config_json),
        longest_tokens=_length(draft.datasets, "max"),
        p99_tokens=_length(draft.datasets, "p99"),
        length_histogram=None if train_tokens else _histogram(draft.datasets),
    )


def default_lora_r(templates: TemplatesConfig) -> int:
    """The templates' default LoRA rank, for suggestions that move a full run to QLoRA."""
    rule = templates.keys.get("lora_r")
    if rule is None or not isinstance(rule.default, int):
        raise UserError("configs/templates.yaml gives lora_r no integer default.")
    return rule.default


def max_accumulation(templates: TemplatesConfig) -> int:
    """The most gradient_accumulation_steps apply_template accepts, the ceiling of a micro-batch
    fix that keeps the effective batch."""
    rule = templates.keys.get("gradient_accumulation_steps")
    if rule is None or rule.max is None:
        raise UserError("configs/templates.yaml gives gradient_accumulation_steps no maximum.")
    return int(rule.max)


def _starting_values(
    templates: TemplatesConfig, applied: str | None, values: dict[str, Any]
) -> dict[str, Any]:
    """The starting values of the applied template, else of the one `values` describe."""
    name = applied or _matching_template(values)
    if name not in templates.templates:
        return {k: r.default for k, r in templates.keys.items() if r.default is not None}
    return templates.starting_values(name)


def _matching_template(values: dict[str, Any]) -> str:
    """apply_template's template names: dpo, kto, full, qlora, lora."""
    if values.get("method") in ("dpo", "kto"):
        return str(values["method"])
    if values.get("adapter") == "none":
        return "full"
    if values.get("adapter") == "qlora" or values.get("load_in_4bit"):
        return "qlora"
    return "lora"


def _shape(
    model: dict[str, Any], config_json: dict[str, Any] | None, plan: TrainingPlan
) -> ModelShape:
    if not config_json:
        arch = Architecture.model_validate(model["architecture"])
        return ModelShape(arch, int(model.get("params") or count_parameters(arch)))
    base = _as_config_json(model.get("architecture") or {})
    if {"hidden_size", "num_attention_heads"} & set(config_json):
        base.pop("head_dim", None)  # derived from those two unless config_json gives it
    merged = {**base, **config_json}
    if not any(k in merged for k in ("max_position_embeddings", "n_positions", "seq_length")):
        # the estimate needs no context length; take the run's so no warning is raised
        merged["max_position_embeddings"] = plan.max_seq_length
    arch = architecture_from_config(merged)
    given = next((config_json[k] for k in PARAM_KEYS if config_json.get(k)), None)
    return ModelShape(arch, int(given) if given else count_parameters(arch))


def _as_config_json(architecture: dict[str, Any]) -> dict[str, Any]:
    """A recorded Architecture in config.json spelling, so config_json keys can overlay it."""
    renamed = {"context_length": "max_position_embeddings", "num_experts": "num_local_experts"}
    return {renamed.get(k, k): v for k, v in architecture.items() if v is not None}


def _mean_example_tokens(datasets: dict[str, Any]) -> int | None:
    """Mean tokens per training example, when validate_datasets recorded it (token_stats.mean)."""
    mean = (datasets.get("token_stats") or {}).get("mean")
    return max(1, round(mean)) if isinstance(mean, int | float) and mean > 0 else None


def _length(datasets: dict[str, Any], statistic: str) -> int | None:
    """A statistic of the examples' token lengths (token_stats.max, .p99), when validate_datasets
    recorded it."""
    value = (datasets.get("token_stats") or {}).get(statistic)
    return value if isinstance(value, int) and value > 0 else None


def _histogram(datasets: dict[str, Any]) -> tuple[tuple[int, int], ...] | None:
    """The examples' [length, records] buckets (length_histogram), when validate_datasets
    recorded them; None for drafts from before it did, or a malformed one."""
    pairs = datasets.get("length_histogram")
    if not isinstance(pairs, list) or not pairs:
        return None
    valid = all(
        isinstance(p, list | tuple) and len(p) == 2 and all(isinstance(v, int) and v > 0 for v in p)
        for p in pairs
    )
    return tuple((p[0], p[1]) for p in pairs) if valid else None


def _label(model: dict[str, Any], config_json: dict[str, Any] | None) -> str:
    if config_json:
        return str(config_json.get("_name_or_path") or config_json.get("model_type") or "custom")
    return str(model.get("model_id") or model.get("architecture", {}).get("model_type"))
