"""estimate_deployment's one entry point: a run's figures on every target, the answer to a budget
question, the chosen target, and what the draft records.

The estimate itself is a pure function of the run and the hardware (estimator.estimate, well
under a millisecond); this module decides everything around it: the budget (given, recorded, or
the default), what to do when every fit is over budget (ask, raise it, take the cheapest), which
option is chosen, which options an answer lists in full, and the step's issues.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.deployment_estimator.catalog import LOCAL, resolve_targets
from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.estimator import FP16, estimate
from tools.deployment_estimator.inputs import (
    DraftSections,
    build_workload,
    default_lora_r,
    max_accumulation,
)
from tools.deployment_estimator.local_gpu import LocalHardware
from tools.deployment_estimator.results import (
    BudgetAnswer,
    BudgetQuestion,
    DeploymentAnswer,
    DeploymentEstimate,
    DeploymentOption,
)
from tools.deployment_estimator.shortlist import shortlist
from tools.errors import UserError
from tools.issues import Issue
from tools.template_loader.config import TemplatesConfig
from tools.trainer_run import TrainerRun


@dataclass(frozen=True)
class DeploymentRequest:
    """What the caller asks, with what the draft already holds."""

    sections: DraftSections = field(default_factory=DraftSections)
    recorded: Mapping[str, Any] = field(default_factory=dict)
    """The draft's deployment step as recorded: its budget and chosen target carry over."""
    architecture: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    train_tokens: int | None = None
    targets: list[str] | None = None
    budget_usd: float | None = None
    select: str | None = None
    budget_answer: BudgetAnswer | None = None
    """The user's answer when every fit was over budget; None: nobody could be asked, so the
    answer carries the question (budget_question)."""


@dataclass(frozen=True)
class DeploymentStep:
    """What the draft records: the step is ready once a target is chosen."""

    ready: bool
    payload: dict[str, Any]
    issues: list[Issue]


@dataclass(frozen=True)
class DeploymentOutcome:
    answer: DeploymentAnswer
    step: DeploymentStep


@dataclass(frozen=True)
class EstimatorSetup:
    """What every estimate reads besides the request: the configs, the user's machine, where
    prices came from."""

    config: DeploymentConfig
    templates: TemplatesConfig
    run: TrainerRun
    local: LocalHardware
    prices: str


def plan_deployment(request: DeploymentRequest, setup: EstimatorSetup) -> DeploymentOutcome:
    """The answer for `request` and the step to record; UserError for what cannot be estimated
    or chosen (missing inputs, an unknown target, a choice that does not fit or cannot run the
    config)."""
    config, local = setup.config, setup.local
    budget = request.budget_usd or request.recorded.get("budget_usd") or config.default_budget_usd
    result = _estimate(request, budget, setup)
    cheapest = over_budget(result)
    select, question = request.select, None
    if cheapest is not None and request.budget_answer == "raise_budget":
        result = _estimate(request, cheapest.cost_usd, setup)
    if cheapest is not None and request.budget_answer in ("raise_budget", "take_cheapest"):
        select = cheapest.target
    elif cheapest is not None and request.budget_answer is None:
        question = BudgetQuestion(
            question=budget_question(result, cheapest),
            cheapest=cheapest.target,
            cheapest_cost_usd=cheapest.cost_usd,
            how=f"raise budget_usd to {cheapest.cost_usd:.2f} and select {cheapest.target}, "
            f"or select {cheapest.target} as it is, or apply a suggestion's training keys",
        )
    remembered = (request.recorded.get("selected") or {}).get("target")
    selected, dropped = _selection(result, select or remembered, explicit=bool(select))
    keep = {LOCAL, result.recommended, selected.target if selected else None} - {None}
    options, others = (result.options, []) if request.targets else shortlist(result.options, keep)
    answer = DeploymentAnswer(
        **{
            **dict(result),
            "options": options,
            "notes": [*result.notes, local.note, *([dropped] if dropped else [])],
            "selected": selected,
        },
        others=others,
        budget_question=question,
    )
    return DeploymentOutcome(answer, _step(result, selected, dropped))


def over_budget(result: DeploymentEstimate) -> DeploymentOption | None:
    """The cheapest option that fits and runs the config, when no option is within budget."""
    if result.recommended is not None:
        return None
    return next((o for o in result.options if o.fits and o.compatible), None)


def budget_question(result: DeploymentEstimate, cheapest: DeploymentOption) -> str:
    """The choice in the user's terms: the cheapest option as it is, and each change that costs
    less (fp16 on a GPU without bf16, fewer epochs, ...)."""
    question = (
        f"Every option that fits and runs this config is over the {result.budget_usd:.2f} USD "
        f"budget. The cheapest is {cheapest.target} ({cheapest.hardware}): "
        f"{cheapest.cost_usd:.2f} USD, {cheapest.hours:.2f} h. Raise the budget to "
        f"{cheapest.cost_usd:.2f} USD and take it, take it over budget, or keep looking?"
    )
    cheaper = sorted(
        (s for s in result.suggestions if s.cost_usd < cheapest.cost_usd),
        key=lambda s: s.cost_usd,
    )
    if not cheaper:
        return question
    changes = "; ".join(
        f"{' and '.join(s.changes)} ({s.target}: {s.cost_usd:.2f} USD, {s.hours:.2f} h)"
        for s in cheaper
    )
    return f"{question} Cheaper with a config change: {changes}."


def _estimate(
    request: DeploymentRequest, budget_usd: float, setup: EstimatorSetup
) -> DeploymentEstimate:
    config, local = setup.config, setup.local
    work = build_workload(
        request.sections,
        config_json=request.architecture,
        training=request.training,
        train_tokens=request.train_tokens,
        templates=setup.templates,
        run=setup.run,
    )
    everywhere = resolve_targets(None, config, local.target)
    targets = resolve_targets(request.targets, config, local.target) if request.targets else None
    chosen = request.select or (request.recorded.get("selected") or {}).get("target")
    return estimate(
        work,
        targets or everywhere,
        budget_usd,
        config,
        alternatives=everywhere,
        default_lora_r=default_lora_r(setup.templates),
        max_accumulation=max_accumulation(setup.templates),
        prices=setup.prices,
        fix_for=[chosen.strip()] if chosen else [],
    )


def _selection(
    result: DeploymentEstimate, wanted: str | None, *, explicit: bool
) -> tuple[DeploymentOption | None, str | None]:
    """The option for `wanted`, and why the draft's choice was dropped (None: it was not).

    The finished package must train on the choice, so an explicit choice that is unknown, does
    not fit or cannot run the config is an error with the fix; a remembered one that no longer
    fits or runs is dropped, with a note saying why."""
    if not wanted:
        return None, None
    options = result.options
    found = next((o for o in options if o.target.lower() == wanted.strip().lower()), None)
    if explicit and found is None:
        known = ", ".join(o.target for o in options)
        raise UserError(f"'{wanted}' is not among the estimated options: {known}.")
    if found is None or (found.fits and found.compatible):
        return found, None
    fix = json.dumps(FP16)
    if explicit:
        alternative = result.recommended or next(
            (o.target for o in options if o.fits and o.compatible), None
        )
        if not found.fits:
            pick = f"Pick {alternative}, which fits" if alternative else "Pick an option that fits"
            there = next((s for s in result.suggestions if s.target == found.target), None)
            if there:
                pick += (
                    f", or keep {found.target} and apply_template with overrides "
                    f"{json.dumps(there.training)} ({'; '.join(there.changes)}: "
                    f"{there.peak_memory_gb:.1f} GB)"
                )
            raise UserError(
                f"{found.target} does not fit: it needs {found.peak_memory_gb:.1f} GB per GPU "
                f"and has {found.usable_memory_gb:.1f} usable. {pick}."
            )
        pick = f", or pick {alternative}" if alternative else ""
        raise UserError(
            f"{found.target} runs on a {found.gpu}, which has no bf16 (the config has bf16 on): "
            f"apply_template with overrides {fix}{pick}."
        )
    if not found.fits:
        why = (
            f"it no longer fits ({found.peak_memory_gb:.1f} GB per GPU needed, "
            f"{found.usable_memory_gb:.1f} usable)"
        )
    else:
        why = f"its {found.gpu} has no bf16 (apply_template with overrides {fix} to keep it)"
    return None, f"the draft's choice {found.target} was dropped: {why}"


def _step(
    result: DeploymentEstimate, selected: DeploymentOption | None, dropped: str | None
) -> DeploymentStep:
    issues = []
    if not any(o.fits for o in result.options):
        first = result.suggestions[0] if result.suggestions else None
        fix = f"{'; '.join(first.changes)} ({first.target})" if first else "choose a larger GPU"
        issues.append(
            Issue(
                severity="error",
                code="deployment.no_fit",
                message="The run fits on none of the estimated targets.",
                fix=fix,
            )
        )
    if selected is None:
        choice = f"select='{result.recommended}'" if result.recommended else "select=<target>"
        issues.append(
            Issue(
                severity="error",
                code="deployment.not_selected",
                message=f"No target is chosen; {dropped}."
                if dropped
                else "No target is chosen yet.",
                fix=f"call estimate_deployment with draft_id and {choice}",
            )
        )
    elif not selected.within_budget:
        issues.append(
            Issue(
                severity="warning",
                code="deployment.over_budget",
                message=(
                    f"{selected.target} costs ${selected.cost_usd:.2f}, over the "
                    f"${result.budget_usd:.2f} budget."
                ),
            )
        )
    payload = {
        "budget_usd": result.budget_usd,
        "options": [o.model_dump(mode="json") for o in result.options],
        "recommended": result.recommended,
        "selected": selected.model_dump(mode="json") if selected else None,
        "memory_gb": result.memory_gb,
        "inputs": result.inputs,
        "prices": result.prices,
    }
    return DeploymentStep(ready=selected is not None, payload=payload, issues=issues)
