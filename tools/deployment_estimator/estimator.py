"""Compare targets for one training run: fit, time, cost, budget; rank them, recommend one, and
say what would change the answer when nothing fits or nothing is affordable."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Any

from tools.deployment_estimator.catalog import Target
from tools.deployment_estimator.config import DeploymentConfig, Gpu
from tools.deployment_estimator.cost import (
    cloud_cost,
    cloud_setup_minutes,
    local_cost,
    to_cents,
)
from tools.deployment_estimator.memory import (
    MemoryBreakdown,
    memory_at,
    trainable_bytes,
    usable_gb,
)
from tools.deployment_estimator.plan import TrainingPlan
from tools.deployment_estimator.results import DeploymentEstimate, DeploymentOption, Suggestion
from tools.deployment_estimator.shapes import ModelShape
from tools.deployment_estimator.throughput import TimeEstimate, run_compute, time_on

EPOCH_STEP = 0.1  # fewer-epochs suggestions are rounded down to a tenth of an epoch
BISECTION_ROUNDS = 30
# The training keys that run a bf16 config on a GPU without bf16 (T4, V100).
FP16 = {"bf16": False, "fp16": True}
FP16_CHANGE = "fp16 instead of bf16"
EIGHT_BIT_OPTIMIZER = "adamw_8bit"  # bitsandbytes AdamW with blockwise 8-bit states


@dataclass(frozen=True)
class Workload:
    """One training run, independent of where it runs."""

    shape: ModelShape
    plan: TrainingPlan
    train_tokens: int
    example_tokens: int | None  # the mean, for time
    model_size_gb: float
    label: str  # the model, for the summary
    longest_tokens: int | None = None  # the data's longest example, for the padded peak
    p99_tokens: int | None = None  # the data's 99th percentile, for a max_seq_length fix
    # (length, records) buckets of the data, for the padded time; None: the mean, unpadded
    length_histogram: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class Evaluation:
    """Each target's option, and each memory breakdown with the targets that share it."""

    options: list[DeploymentOption]
    memory_gb: list[dict[str, Any]]


def evaluate(
    work: Workload, targets: list[Target], budget_usd: float, config: DeploymentConfig
) -> Evaluation:
    """Each target's figures: memory per GPU, time, cost and the notes that qualify them.

    What the run asks of any GPU is worked out once. Memory depends on a target only through
    the bytes per trained weight and whether it runs data parallel, so targets that agree on
    both share it, and its breakdown is reported once for them all.
    """
    compute = run_compute(
        work.shape,
        work.plan,
        config,
        train_tokens=work.train_tokens,
        example_tokens=work.example_tokens,
        histogram=work.length_histogram,
    )
    memory: dict[tuple[float, bool], MemoryBreakdown] = {}
    sharing: dict[tuple[float, bool], list[str]] = {}
    options = []
    for target in targets:
        gpu = config.gpus[target.gpu]
        key = (trainable_bytes(work.plan, gpu, config), target.gpu_count > 1)
        if key not in memory:
            memory[key] = memory_at(
                work.shape, work.plan, config, *key, longest=work.longest_tokens
            )
            sharing[key] = []
        sharing[key].append(target.id)
        time = time_on(compute, work.plan, gpu, config, gpu_count=target.gpu_count)
        options.append(_option(work, target, gpu, memory[key], time, budget_usd, config))
    shared = [{"targets": ids, **_parts_gb(memory[key])} for key, ids in sharing.items()]
    return Evaluation(options, shared)


def _parts_gb(memory: MemoryBreakdown) -> dict[str, float]:
    return {
        "weights": round(memory.weights_gb + memory.trainable_gb, 2),
        "gradients": round(memory.gradients_gb, 2),
        "optimizer": round(memory.optimizer_gb, 2),
        "activations": round(memory.activations_gb, 2),
        "logits": round(memory.logits_gb, 2),
        "buffers": round(memory.buffers_gb, 2),
        "overhead": round(memory.overhead_gb, 2),
    }


def _option(
    work: Workload,
    target: Target,
    gpu: Gpu,
    memory: MemoryBreakdown,
    time: TimeEstimate,
    budget_usd: float,
    config: DeploymentConfig,
) -> DeploymentOption:
    if target.kind == "cloud" and target.usd_per_hour is not None:
        cost = cloud_cost(time.training_hours, target.usd_per_hour, work.model_size_gb, config)
    else:
        cost = local_cost(time.training_hours, gpu, target.gpu_count, config)
    usd = to_cents(cost.usd)  # the budget is held against the figure the user reads
    usable = usable_gb(gpu, config)
    fits = memory.peak_gb <= usable
    notes = []
    if not fits:
        notes.append(f"out of memory: needs {memory.peak_gb:.1f} GB per GPU, {usable:.1f} usable")
    compatible = not (work.plan.bf16 and not gpu.bf16)
    if not compatible:
        notes.append(
            f"no bf16 on {target.gpu}: to train here, apply_template with bf16=false, fp16=true "
            "(figures assume fp16)"
        )
    if target.gpu_count > 1:
        notes.append(f"data parallel on {target.gpu_count} GPUs, each holding the whole model")
    if target.jobs_only:
        notes.append("Hugging Face Jobs only, not Spaces")
    if cost.energy_kwh is not None:
        notes.append(f"electricity only: {cost.energy_kwh:.1f} kWh")
    return DeploymentOption(
        target=target.id,
        hardware=target.describe(gpu),
        gpu=target.gpu,
        gpu_count=target.gpu_count,
        fits=fits,
        compatible=compatible,
        peak_memory_gb=round(memory.peak_gb, 2),
        usable_memory_gb=round(usable, 2),
        hours=round(cost.hours, 3),
        cost_usd=usd,
        within_budget=usd <= budget_usd,
        tokens_per_second=round(time.tokens_per_second),
        notes=notes,
    )


def rank(options: list[DeploymentOption]) -> list[DeploymentOption]:
    """Fitting options first, those that run the config as it is next, then cheaper, faster."""
    return sorted(options, key=lambda o: (not o.fits, not o.compatible, o.cost_usd, o.hours))


def recommend(ranked: list[DeploymentOption]) -> DeploymentOption | None:
    """The first of the `ranked` options that fits, runs the config as it is and is within
    budget."""
    return next((o for o in ranked if o.fits and o.compatible and o.within_budget), None)


def estimate(
    work: Workload,
    targets: list[Target],
    budget_usd: float,
    config: DeploymentConfig,
    *,
    alternatives: list[Target],
    default_lora_r: int,
    prices: str,
    fix_for: Iterable[str] = (),
    max_accumulation: int | None = None,
) -> DeploymentEstimate:
    """Every target's option, ranked, with a recommendation; when none is both fitting and
    within budget, the changes that would give one (each with its new figures); and, for the
    user's own GPUs and the targets in `fix_for` (a choice) that the run does not fit, the
    smallest change that fits there, whatever else fits.

    `alternatives` are the targets a "different hardware" suggestion may pick from (every
    configured flavor and the local GPU); `default_lora_r` is the rank a QLoRA suggestion uses
    when the run has no LoRA yet (the templates' default); `prices` says where prices came from;
    `max_accumulation` caps the gradient accumulation a micro-batch fix may ask for (the
    templates' maximum; None: no cap).
    """
    evaluation = evaluate(work, targets, budget_usd, config)
    options = rank(evaluation.options)
    best = recommend(options)
    suggest = _Suggester(
        work, targets, budget_usd, config, alternatives, default_lora_r, max_accumulation
    )
    suggestions: list[Suggestion] = []
    if best is None:
        fitting = any(o.fits for o in options)
        cheapest = next((o for o in options if o.fits and o.compatible), None)
        suggestions = suggest.for_budget(cheapest) if fitting else suggest.for_memory()
    wanted = {name.lower() for name in fix_for}
    for option in options:
        target = next(t for t in targets if t.id == option.target)
        if option.fits or not (target.kind != "cloud" or target.id.lower() in wanted):
            continue
        fix = suggest.smallest_fix([target])
        if fix and all((s.target, s.changes) != (fix.target, fix.changes) for s in suggestions):
            suggestions.append(fix)
    return DeploymentEstimate(
        options=options,
        recommended=best.target if best else None,
        budget_usd=budget_usd,
        memory_gb=evaluation.memory_gb,
        inputs=_summary(work),
        suggestions=suggestions,
        prices=prices,
        notes=_notes(work, targets, config),
    )


class _Suggester:
    """Builds suggestions by re-estimating the run with changes applied."""

    def __init__(
        self,
        work: Workload,
        targets: list[Target],
        budget_usd: float,
        config: DeploymentConfig,
        alternatives: list[Target],
        default_lora_r: int,
        max_accumulation: int | None,
    ):
        self.work, self.targets, self.budget, self.config = work, targets, budget_usd, config
        self.others = [t for t in alternatives if t.id not in {x.id for x in targets}]
        self.default_lora_r = default_lora_r
        self.max_accumulation = max_accumulation

    def for_memory(self) -> list[Suggestion]:
        """Nothing fits: the smallest change that makes it fit somewhere, and a bigger GPU."""
        found = []
        smallest = self.smallest_fix(self.targets)
        if smallest:
            found.append(smallest)
        bigger = self._try(["a GPU with more memory: {target}"], {}, self.others)
        if bigger:
            found.append(bigger)
        return found

    def smallest_fix(self, targets: list[Target]) -> Suggestion | None:
        """The fewest memory-saving changes that make the run fit on one of `targets`; among
        as many, the least disruptive (the memory steps' order). None when no combination fits.
        """
        steps = self._memory_steps()
        for size in range(1, len(steps) + 1):
            for combo in combinations(steps, size):
                found = self._fit(combo, targets)
                if found:
                    return found
        return None

    def _fit(self, combo: tuple[str, ...], targets: list[Target]) -> Suggestion | None:
        """`combo` applied; a smaller micro batch is the largest that fits with the rest and
        keeps the effective batch within the accumulation apply_template accepts."""
        labels: list[str] = []
        changes: dict[str, Any] = {}
        for step in combo:
            label, change = self._step(step)
            labels.append(label)
            changes |= change
        if "micro_batch" not in combo:
            return self._try(labels, changes, targets)
        at, plan = combo.index("micro_batch"), self.work.plan
        effective = plan.batch_size * plan.gradient_accumulation_steps
        for micro in range(plan.batch_size - 1, 0, -1):
            if effective % micro:
                continue
            accumulation = effective // micro
            if self.max_accumulation is not None and accumulation > self.max_accumulation:
                break  # smaller micro batches need more
            labels[at] = f"micro batch {micro} with gradient accumulation {accumulation}"
            batch = {"batch_size": micro, "gradient_accumulation_steps": accumulation}
            found = self._try(labels, {**changes, **batch}, targets)
            if found:
                return found
        return None

    def _memory_steps(self) -> list[str]:
        """The changes that save memory, least disruptive first: recomputation (slower), a
        smaller micro batch with the same effective batch (slower), 8-bit optimizer states
        (full fine-tuning), truncating the longest 1% of the data, a 4-bit base."""
        plan = self.work.plan
        steps = []
        if not plan.gradient_checkpointing:
            steps.append("checkpointing")
        if plan.batch_size > 1:
            steps.append("micro_batch")
        if plan.kind == "full" and self.config.optimizers[plan.optimizer].state_bytes is None:
            steps.append("optimizer_8bit")
        if self._p99_length() is not None:
            steps.append("p99_length")
        if plan.kind != "qlora":
            steps.append("qlora")
        return steps

    def _step(self, step: str) -> tuple[str, dict[str, Any]]:
        """A memory step's line and training keys (a micro batch's are chosen in _fit)."""
        if step == "micro_batch":
            return "", {}
        if step == "checkpointing":
            return "gradient checkpointing", {"gradient_checkpointing": True}
        if step == "optimizer_8bit":
            return "8-bit AdamW states (optimizer adamw_8bit)", {"optimizer": EIGHT_BIT_OPTIMIZER}
        if step == "p99_length":
            length = self._p99_length()
            return (
                f"max_seq_length {length}, from the data's 99th percentile: longer examples "
                f"(at most 1%, up to {self.work.longest_tokens} tokens) are truncated",
                {"max_seq_length": length},
            )
        qlora = {"adapter": "qlora", "load_in_4bit": True, "lora_r": self._lora_r}
        return "QLoRA (4-bit base weights)", qlora

    def _p99_length(self) -> int | None:
        """max_seq_length at the data's 99th percentile (at least suggestions.min_seq_length),
        when that is shorter than the batches' longest; None without validated data."""
        work = self.work
        if work.p99_tokens is None or work.longest_tokens is None:
            return None
        length = max(work.p99_tokens, self.config.suggestions.min_seq_length)
        return length if length < work.plan.sequence_tokens(work.longest_tokens) else None

    def for_budget(self, cheapest: DeploymentOption | None) -> list[Suggestion]:
        """Something fits but costs too much: less work, faster training, cheaper hardware, or
        fp16 on a GPU without bf16 that costs less than `cheapest` (the cheapest option that
        fits and runs the config as it is)."""
        found = []
        epochs = self._fewer_epochs()
        if epochs:
            found.append(epochs)
        if self.work.plan.kind != "lora":
            lora = {"adapter": "lora", "load_in_4bit": False, "lora_r": self._lora_r}
            suggestion = self._try(["LoRA in 16-bit (less compute)"], lora)
            if suggestion and suggestion.within_budget:
                found.append(suggestion)
        cheaper = self._try(["cheaper hardware: {target}"], {}, self.others)
        if cheaper and cheaper.within_budget:
            found.append(cheaper)
        half = self._fp16(cheapest)
        if half:
            found.append(half)
        return found

    def _fp16(self, cheapest: DeploymentOption | None) -> Suggestion | None:
        """The run in fp16 on the cheapest GPU without bf16 that fits, when it costs less."""
        if not self.work.plan.bf16:
            return None
        pool = [t for t in [*self.targets, *self.others] if not self.config.gpus[t.gpu].bf16]
        found = self._try([f"{FP16_CHANGE} on {{target}}"], FP16, pool) if pool else None
        if found is None or (cheapest is not None and found.cost_usd >= cheapest.cost_usd):
            return None
        return found

    @property
    def _lora_r(self) -> int:
        return self.work.plan.lora_r or self.default_lora_r

    def _try(
        self, labels: list[str], changes: dict, targets: list[Target] | None = None
    ) -> Suggestion | None:
        """The best option with `changes` applied, when one fits; else None. `labels` (a line
        per change) may name the option's {target}; on a GPU without bf16 the change includes
        fp16."""
        work = replace(self.work, plan=self.work.plan.with_changes(**changes))
        chosen = self.targets if targets is None else targets
        ranked = rank(evaluate(work, chosen, self.budget, self.config).options)
        best = recommend(ranked) or next((o for o in ranked if o.fits), None)
        if best is None:
            return None
        lines = [label.format(target=best.target) for label in labels]
        if not best.compatible:  # the figures already assume fp16 there
            lines, changes = [*lines, FP16_CHANGE], {**changes, **FP16}
        return Suggestion(
            changes=lines,
            training=changes,
            target=best.target,
            peak_memory_gb=best.peak_memory_gb,
            hours=best.hours,
            cost_usd=best.cost_usd,
            within_budget=best.within_budget,
        )

    def _fewer_epochs(self) -> Suggestion | None:
        """The most epochs (in tenths) whose cheapest fitting option is within budget."""
        epochs = self.work.plan.num_epochs

        def affordable(n: float) -> bool:
            found = self._try([], {"num_epochs": n})
            return bool(found and found.within_budget)

        most = _largest(affordable, 0.0, epochs)
        tenths = int(most / EPOCH_STEP) * EPOCH_STEP
        if tenths < EPOCH_STEP or not affordable(round(tenths, 1)):
            return None
        tenths = round(tenths, 1)
        return self._try(
            [f"fewer epochs: {tenths:g} instead of {epochs:g}"], {"num_epochs": tenths}
        )


def _largest(ok: Callable[[float], bool], low: float, high: float) -> float:
    """The largest x in (low, high] with ok(x), for ok monotone decreasing; `low` when none."""
    for _ in range(BISECTION_ROUNDS):
        middle = (low + high) / 2
        if ok(middle):
            low = middle
        else:
            high = middle
    return low


def _summary(work: Workload) -> dict:
    plan = work.plan
    return {
        "model": work.label,
        "params_b": round(work.shape.params / 1e9, 3),
        "method": plan.method,
        "training": plan.kind,
        "train_tokens": work.train_tokens,
        "num_epochs": plan.num_epochs,
        "batch_size": plan.batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
        "max_seq_length": plan.max_seq_length,
        "example_tokens": work.example_tokens,
        "longest_tokens": work.longest_tokens,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "optimizer": plan.optimizer,
        "lora_r": plan.lora_r if plan.kind != "full" else None,
    }


def _notes(work: Workload, targets: list[Target], config: DeploymentConfig) -> list[str]:
    notes = []
    plan, arch = work.plan, work.shape.arch
    if any(t.kind == "cloud" for t in targets):
        setup = cloud_setup_minutes(work.model_size_gb, config)
        notes.append(f"cloud hours include {setup:.1f} min of start-up and model download")
    if plan.kind == "full" and plan.weights_dtype != "auto":
        copy = f", and a {plan.reference_dtype} reference copy" if plan.reference_copy else ""
        notes.append(
            f"full fine-tuning as train.py loads it: {plan.weights_dtype} weights, gradients "
            f"and optimizer states{copy}"
        )
    if not (plan.bf16 or plan.fp16):
        dtype = "" if plan.weights_dtype == "auto" else f" ({plan.weights_dtype})"
        notes.append(
            "no bf16/fp16 mixed precision: memory counts activations and logits in the weights' "
            f"dtype{dtype}, but the time assumes 16-bit tensor-core matmuls, several times "
            "faster than fp32's; set bf16 (or fp16 on GPUs without it)"
        )
    if work.longest_tokens is None and not plan.packing:
        notes.append(
            f"no validated data: batches padded to max_seq_length {plan.max_seq_length} assumed "
            "(validate_datasets gives the real longest example)"
        )
    if work.example_tokens is not None and work.length_histogram is None and not plan.packing:
        notes.append(
            "time counts the mean example unpadded (no length histogram: validate_datasets "
            "again, without an explicit train_tokens); batches padded to their longest take longer"
        )
    if work.example_tokens is None:
        notes.append(
            f"mean example length unknown: full {plan.max_seq_length}-token sequences assumed "
            "for time; shorter examples train fewer tokens per second"
        )
    if plan.max_seq_length > arch.context_length:
        notes.append(
            f"max_seq_length {plan.max_seq_length} exceeds the model's context length "
            f"{arch.context_length}"
        )
    if arch.num_experts:
        notes.append(
            "mixture-of-experts: time counts one expert per token; with top-k routing it is "
            "up to k times longer"
        )
    if plan.optimizer.startswith("paged_"):
        notes.append("paged optimizer: its states can spill to CPU memory when the GPU is full")
    return notes
