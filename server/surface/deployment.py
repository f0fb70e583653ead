"""estimate_deployment and the package://hardware resource (step 4)."""

import inspect
import json
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio
from huggingface_hub import is_offline_mode
from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.drafts import DraftPackage, StepName, StepSection
from server.drafts.model import StepIssue, StepStatus
from server.errors import resource_errors, tool_errors
from server.logging import get_logger
from server.settings import Secrets, Settings
from server.state import app_state, client_can_elicit, load_draft, save_step
from tools.deployment_estimator.catalog import LOCAL, match_gpu
from tools.deployment_estimator.config import DeploymentConfig
from tools.deployment_estimator.inputs import DraftSections
from tools.deployment_estimator.live_prices import (
    fetch_live_prices,
    with_live_prices,
)
from tools.deployment_estimator.local_gpu import (
    LocalHardware,
    local_hardware,
    query_nvidia_smi,
)
from tools.deployment_estimator.memo import EstimateMemo, EstimateRequest
from tools.deployment_estimator.results import DeploymentEstimate, DeploymentOption
from tools.deployment_estimator.shortlist import shortlist
from tools.errors import NotFoundError, UserError

HARDWARE_URI = "package://hardware"
P = ParamSpec("P")
R = TypeVar("R")

log = get_logger(__name__)


class BudgetQuestion(BaseModel):
    """What the user must decide when every option that fits is over budget."""

    question: str
    cheapest: str
    cheapest_cost_usd: float
    how: str = Field(description="How to answer without elicitation.")


class EstimateDeploymentResult(DeploymentEstimate):
    others: list[str] = Field(
        default_factory=list,
        description="Other targets, a line each: beaten on cost and time, or out. Name them in "
        "`targets` for details.",
    )
    budget_question: BudgetQuestion | None = None
    draft_uri: str | None = None
    next_action: str


class _Hardware:
    """What is slow to learn, learnt once per server: the local GPU (nvidia-smi, in a worker
    thread), the Hub's live prices (in a worker thread, bounded, cached for cache_ttl_s), and
    the estimates already made (tools.deployment_estimator.memo)."""

    def __init__(self) -> None:
        self._local: LocalHardware | None = None
        self._live: tuple[float, DeploymentConfig] | None = None
        self._memo: EstimateMemo | None = None

    async def local(self, config: DeploymentConfig, refresh: bool = False) -> LocalHardware:
        if self._local is None or refresh:
            detected: list[str] = []
            if config.local.gpu is None and config.local.detect:
                detected = await anyio.to_thread.run_sync(
                    query_nvidia_smi, config.local.detect_timeout_s
                )
            self._local = local_hardware(config, detected)
        return self._local

    async def priced(
        self, settings: Settings, secrets: Secrets, refresh: bool = False
    ) -> tuple[DeploymentConfig, str]:
        """The deployment config with live prices where the Hub gave them, and which were used.

        The priced config is made once per fetch, so that estimates made with it are remembered.
        """
        config = settings.deployment
        live = config.live_prices
        fallback = f"prices: {live.fallback_source}"
        if not live.enabled:
            return config, fallback
        if is_offline_mode():
            return config, f"{fallback}; HF_HUB_OFFLINE is set"
        cached = self._live
        if cached is None or refresh or time.monotonic() - cached[0] >= live.cache_ttl_s:
            endpoint = settings.models.hub.endpoint
            token = secrets.hf_token.get_secret_value() if secrets.hf_token else None
            fetch = partial(fetch_live_prices, str(endpoint) if endpoint else None, token)
            try:
                with anyio.fail_after(live.timeout_s):
                    prices = await anyio.to_thread.run_sync(fetch, abandon_on_cancel=True)
            except Exception as exc:  # any failure: the YAML prices stand in
                log.warning("hardware.live_prices_failed", error=type(exc).__name__)
                return config, f"{fallback}; the Hub's live list did not answer"
            cached = self._live = (time.monotonic(), with_live_prices(config, prices))
        return cached[1], "prices: the Hub's live hardware list"

    def memo(self, config: DeploymentConfig) -> EstimateMemo:
        if self._memo is None:
            self._memo = EstimateMemo(config.memo_entries)
        return self._memo


class BudgetChoice(BaseModel):
    choice: Literal["raise_budget", "take_cheapest", "keep"] = Field(
        description="raise_budget: budget = the cheapest option's cost, and select it; "
        "take_cheapest: select it within the budget as it is; keep: change nothing."
    )


@dataclass(frozen=True)
class _Planned:
    draft: DraftPackage | None
    result: DeploymentEstimate  # shared with the memo: read, never changed
    local_note: str  # what the local machine is, for the result's notes
    previous: dict[str, Any]


# The plan budget_choice made for a call when it asked the user nothing, for that call's body:
# the resolver and the body run in one task, and the Context tells the call apart. After a
# question the body plans again, with the draft as it is once the user has answered.
_UNASKED: ContextVar[tuple[Context, _Planned] | None] = ContextVar("unasked_plan", default=None)


def _over_budget(result: DeploymentEstimate) -> DeploymentOption | None:
    """The cheapest option that fits and runs the config, when no option is within budget."""
    if result.recommended is not None:
        return None
    return next((o for o in result.options if o.fits and o.compatible), None)


def register(mcp: MCPServer) -> None:
    hardware = _Hardware()

    async def plan(
        ctx: Context,
        draft_id: str | None,
        model_config: dict[str, Any] | None,
        training: dict[str, Any] | None,
        train_tokens: int | None,
        targets: list[str] | None,
        budget_usd: float | None,
    ) -> _Planned:
        state = app_state(ctx)
        draft = await load_draft(ctx, draft_id) if draft_id else None
        config, prices = await hardware.priced(state.settings, state.secrets)
        local = await hardware.local(config)
        previous = draft.deployment.payload if draft else {}
        request = EstimateRequest(
            budget_usd=budget_usd or previous.get("budget_usd") or config.default_budget_usd,
            sections=_sections(draft),
            model_config=model_config,
            training=training,
            train_tokens=train_tokens,
            targets=targets,
        )
        made = hardware.memo(config).estimate(
            request,
            config=config,
            templates=state.settings.templates,
            local=local.target,
            prices=prices,
        )
        return _Planned(draft, made, local.note, previous)

    async def budget_choice(
        ctx: Context,
        draft_id: str | None = None,
        model_config: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        train_tokens: int | None = None,
        targets: list[str] | None = None,
        budget_usd: float | None = None,
        select: str | None = None,
    ) -> BudgetChoice | Elicit[BudgetChoice]:
        """Ask the user, when the client can ask, what to do if every fit is over budget."""
        if select or not draft_id or not client_can_elicit(ctx):
            return BudgetChoice(choice="keep")
        try:
            planned = await plan(
                ctx, draft_id, model_config, training, train_tokens, targets, budget_usd
            )
        except UserError:
            return BudgetChoice(choice="keep")  # the tool body reports the problem
        cheapest = _over_budget(planned.result)
        if cheapest is None:
            _UNASKED.set((ctx, planned))
            return BudgetChoice(choice="keep")
        return Elicit(_budget_question(planned.result, cheapest), BudgetChoice)

    async def estimate_deployment(
        ctx: Context,
        decision: Annotated[ElicitationResult[BudgetChoice], Resolve(budget_choice)],
        draft_id: Annotated[
            str | None, Field(description="Read model, config and tokens; record the plan.")
        ] = None,
        model_config: Annotated[
            dict[str, Any] | None,
            Field(description="config.json keys (num_hidden_layers, hidden_size, ...; params)."),
        ] = None,
        training: Annotated[
            dict[str, Any] | None, Field(description="Template keys overriding the draft's.")
        ] = None,
        train_tokens: Annotated[int | None, Field(gt=0, description="Tokens per epoch.")] = None,
        targets: Annotated[
            list[str] | None,
            Field(description="Hardware ids or GPU names; default: local and every flavor."),
        ] = None,
        budget_usd: Annotated[
            float | None, Field(gt=0, description="Spending limit; default: the draft's.")
        ] = None,
        select: Annotated[
            str | None, Field(description="Target to record as the draft's choice.")
        ] = None,
    ) -> EstimateDeploymentResult:
        if select and not draft_id:
            raise UserError("`select` records a choice in a draft: pass draft_id too.")
        unasked = _UNASKED.get()
        if unasked is not None and unasked[0] is ctx:
            planned = unasked[1]
        else:
            planned = await plan(
                ctx, draft_id, model_config, training, train_tokens, targets, budget_usd
            )
        draft, result, previous = planned.draft, planned.result, planned.previous
        cheapest = _over_budget(result)
        answer = decision.data.choice if isinstance(decision, AcceptedElicitation) else "keep"
        if cheapest is not None and answer == "raise_budget":
            budget_usd = math.ceil(cheapest.cost_usd)
            planned = await plan(
                ctx, draft_id, model_config, training, train_tokens, targets, budget_usd
            )
            result = planned.result
        question = None
        if cheapest is not None and answer != "keep":
            select = cheapest.target
        elif cheapest is not None and not client_can_elicit(ctx):
            question = BudgetQuestion(
                question=_budget_question(result, cheapest),
                cheapest=cheapest.target,
                cheapest_cost_usd=cheapest.cost_usd,
                how=f"raise budget_usd to {math.ceil(cheapest.cost_usd)} and select "
                f"{cheapest.target}, or select {cheapest.target} as it is",
            )
        respond = partial(_answer, planned, listed_all=bool(targets), budget_question=question)
        if draft is None:
            return respond(
                None, next_action="pass draft_id to record the plan, and select to choose a target"
            )
        wanted = select or (previous.get("selected") or {}).get("target")
        selected = _selection(result.options, wanted, explicit=bool(select))
        saved = await save_step(ctx, draft, StepName.DEPLOYMENT, _section(result, selected))
        return respond(selected, draft_uri=saved.uri, next_action=saved.next_action)

    mcp.tool(
        title="Estimate deployment",
        description=(
            "Step 4: fit, time and cost on the local GPU and Hugging Face hardware, ranked, "
            "with a recommendation and fixes. Records the plan; `select` picks the target."
        ),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )(_published_as(tool_errors(estimate_deployment), "model_config"))

    @mcp.resource(
        HARDWARE_URI + "{?refresh}",
        title="Hardware and prices",
        description="GPUs, Hugging Face hardware with hourly prices, and the local machine.",
        mime_type="application/json",
    )
    @resource_errors
    async def hardware_catalog(ctx: Context, refresh: bool = False) -> str:
        # A URI template (its query optional) rather than a static resource: static resources
        # get no Context, and the catalog depends on the settings and the machine.
        state = app_state(ctx)
        config, prices = await hardware.priced(state.settings, state.secrets, refresh)
        local = await hardware.local(config, refresh)
        return json.dumps(
            {
                "prices": prices,
                "flavors": {k: v.model_dump() for k, v in config.flavors.items()},
                "gpus": {k: v.model_dump(exclude={"aliases"}) for k, v in config.gpus.items()},
                "local": {
                    "gpu": local.target.gpu if local.target else None,
                    "gpu_count": local.target.gpu_count if local.target else 0,
                    "note": local.note,
                    **config.local.model_dump(include={"electricity_usd_per_kwh", "pue"}),
                },
                "overheads": config.overheads.model_dump(),
            },
            indent=2,
        )

    @mcp.resource(
        HARDWARE_URI + "/{hardware_id}",
        title="One hardware option",
        description="A Hugging Face flavor (spec and hourly price) or a GPU's spec.",
        mime_type="application/json",
    )
    @resource_errors
    async def hardware_item(hardware_id: str, ctx: Context) -> str:
        config = app_state(ctx).settings.deployment
        if flavor := config.flavors.get(hardware_id):
            gpu = config.gpus[flavor.gpu]
            return json.dumps(
                {
                    "flavor": hardware_id,
                    **flavor.model_dump(),
                    "gpu_spec": gpu.model_dump(exclude={"aliases"}),
                },
                indent=2,
            )
        if gpu_key := match_gpu(hardware_id, config.gpus):
            return json.dumps(
                {"gpu": gpu_key, **config.gpus[gpu_key].model_dump(exclude={"aliases"})},
                indent=2,
            )
        raise NotFoundError(
            f"No hardware {hardware_id!r}; read {HARDWARE_URI} for the flavors and GPUs."
        )


def _published_as(fn: Callable[P, R], name: str) -> Callable[P, R]:
    """Publish parameter `name` under its own name although pydantic reserves it.

    The SDK builds a pydantic model of the arguments, and pydantic forbids a field called
    `model_config`; the field gets a suffixed name with `name` as its alias, which is what the
    input schema shows and what the SDK passes back to `fn`.
    """
    signature = inspect.signature(fn)
    parameters = [
        p.replace(name=f"{name}_", annotation=Annotated[p.annotation, Field(alias=name)])
        if p.name == name
        else p
        for p in signature.parameters.values()
    ]
    fn.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return fn


def _answer(
    planned: _Planned, selected: DeploymentOption | None, *, listed_all: bool, **fields: Any
) -> EstimateDeploymentResult:
    """The tool's answer: the shared estimate with this call's notes and selection, listing in
    full the options worth choosing between (all of them when the caller named the targets)."""
    result = planned.result
    keep = {LOCAL, result.recommended, selected.target if selected else None} - {None}
    options, others = (result.options, []) if listed_all else shortlist(result.options, keep)
    return EstimateDeploymentResult(
        **{
            **dict(result),
            "options": options,
            "notes": [*result.notes, planned.local_note],
            "selected": selected,
        },
        others=others,
        **fields,
    )


def _sections(draft: DraftPackage | None) -> DraftSections:
    if draft is None:
        return DraftSections()
    return DraftSections(
        model=draft.model.payload, config=draft.config.payload, datasets=draft.datasets.payload
    )


def _budget_question(result: DeploymentEstimate, cheapest: DeploymentOption) -> str:
    return (
        f"Every option that fits is over the {result.budget_usd:.2f} USD budget. The cheapest "
        f"is {cheapest.target} ({cheapest.hardware}): {cheapest.cost_usd:.2f} USD, "
        f"{cheapest.hours:.1f} h. Raise the budget to {math.ceil(cheapest.cost_usd)} USD and "
        "take it, take it within the budget as it is, or keep looking?"
    )


def _selection(
    options: list[DeploymentOption], wanted: str | None, *, explicit: bool
) -> DeploymentOption | None:
    """The option for `wanted`; an explicit choice that is unknown or does not fit is an error,
    a remembered one that no longer fits is dropped."""
    if not wanted:
        return None
    found = next((o for o in options if o.target.lower() == wanted.strip().lower()), None)
    if explicit and found is None:
        known = ", ".join(o.target for o in options)
        raise UserError(f"'{wanted}' is not among the estimated options: {known}.")
    if found is not None and not found.fits:
        if explicit:
            raise UserError(
                f"{found.target} does not fit: it needs {found.peak_memory_gb:.1f} GB per GPU "
                f"and has {found.usable_memory_gb:.1f} usable. Pick an option that fits."
            )
        return None
    return found


def _section(result: DeploymentEstimate, selected: DeploymentOption | None) -> StepSection:
    issues = []
    if not any(o.fits for o in result.options):
        fix = result.suggestions[0].change if result.suggestions else "choose a larger GPU"
        issues.append(
            StepIssue(
                severity="error",
                code="deployment.no_fit",
                message="The run fits on none of the estimated targets.",
                fix=fix,
            )
        )
    if selected is None:
        choice = f"select='{result.recommended}'" if result.recommended else "select=<target>"
        issues.append(
            StepIssue(
                severity="error",
                code="deployment.not_selected",
                message="No target is chosen yet.",
                fix=f"call estimate_deployment with draft_id and {choice}",
            )
        )
    elif not selected.within_budget:
        issues.append(
            StepIssue(
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
    status = StepStatus.VALID if selected else StepStatus.INVALID
    return StepSection(status=status, payload=payload, issues=issues)
