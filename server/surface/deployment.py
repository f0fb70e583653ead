"""estimate_deployment and the package://hardware resources (step 4), on the deployment service.

The service (tools.deployment_estimator.service) plans the run, answers the budget question and
makes the choice; this module reads the draft, asks the user through elicitation when every fit
is over budget and the client can be asked, records the step and returns.
"""

import json
from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.types import ToolAnnotations
from pydantic import AliasChoices, BaseModel, Field

from server.drafts import DraftPackage, StepName
from server.errors import resource_errors, tool_errors
from server.state import app_state, client_can_elicit, load_draft
from server.steps import deployment_section, draft_sections, hardware_facts, record_step
from tools import deployment_estimator
from tools.deployment_estimator import (
    BudgetAnswer,
    BudgetQuestion,
    DeploymentOption,
    Suggestion,
)
from tools.errors import UserError

HARDWARE_URI = "package://hardware"


class EstimateDeploymentResult(BaseModel):
    """The estimate as the user chooses from it; the draft keeps the rest (every option, the
    memory breakdown, the run's inputs). Once a target is selected, the answer is the choice."""

    options: list[DeploymentOption] = Field(
        description="The options worth choosing between, fitting first, then cost, then time."
    )
    others: list[str] = Field(
        description="Other targets, a line each: beaten on cost and time, or out. Name them in "
        "`targets` for details."
    )
    recommended: str | None = Field(description="The cheapest option that fits, within budget.")
    selected: DeploymentOption | None = Field(description="The draft's chosen target.")
    budget_usd: float
    suggestions: list[Suggestion] = Field(
        description="Changes that would make it fit (on the target named, e.g. your own GPU) "
        "or fit the budget, with their figures."
    )
    budget_question: BudgetQuestion | None = Field(
        description="Ask the user this when every option that fits is over budget."
    )
    notes: list[str]
    prices: str = Field(description="Where the prices come from.")
    inputs: dict[str, Any] | None = Field(
        default=None, description="Without a draft, the run as estimated (a draft keeps it)."
    )
    memory_gb: list[dict[str, Any]] | None = Field(
        default=None,
        description="Without a draft, the parts of the peak per GPU for the targets sharing "
        "them (a draft keeps them).",
    )
    draft_uri: str | None = None
    next_action: str


def _answer(
    answer: "deployment_estimator.DeploymentAnswer", *, selecting: bool, in_draft: bool
) -> dict[str, Any]:
    """What the user chooses from; after a selection, the choice alone (they saw the rest).
    The run's inputs and memory breakdown come along only when no draft keeps them."""
    shown = dict(answer)
    if in_draft:
        shown.update(inputs=None, memory_gb=None)
    if selecting:
        shown.update(options=[], others=[], suggestions=[])
    return shown


class BudgetChoice(BaseModel):
    choice: BudgetAnswer = Field(
        description="raise_budget: budget = exactly the cheapest option's cost, and select it; "
        "take_cheapest: select it over the budget as it is; keep: change nothing (e.g. to "
        "apply a cheaper suggested config change)."
    )


async def _plan(
    ctx: Context, draft_id: str | None, answer: BudgetAnswer | None, **arguments: Any
) -> tuple[DraftPackage | None, "deployment_estimator.DeploymentOutcome"]:
    """The service's outcome for the tool's `arguments` (its request's fields), with the
    draft's steps and recorded plan, and the user's answer to the budget question."""
    state = app_state(ctx)
    draft = await load_draft(ctx, draft_id) if draft_id else None
    config, prices, local = await hardware_facts(state)
    request = deployment_estimator.DeploymentRequest(
        sections=draft_sections(draft),
        recorded=draft.deployment.payload if draft else {},
        budget_answer=answer,
        **arguments,
    )
    settings = state.settings
    setup = deployment_estimator.EstimatorSetup(
        config, settings.templates, settings.package.run, local, prices
    )
    return draft, deployment_estimator.plan_deployment(request, setup)


async def budget_choice(
    ctx: Context,
    draft_id: str | None = None,
    architecture: dict[str, Any] | None = None,
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
        _, outcome = await _plan(
            ctx,
            draft_id,
            None,
            architecture=architecture,
            training=training,
            train_tokens=train_tokens,
            targets=targets,
            budget_usd=budget_usd,
        )
    except UserError:
        return BudgetChoice(choice="keep")  # the tool body reports the problem
    question = outcome.answer.budget_question
    if question is None:
        return BudgetChoice(choice="keep")
    return Elicit(question.question, BudgetChoice)


def register(mcp: MCPServer) -> None:
    @mcp.tool(
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
    )
    @tool_errors
    async def estimate_deployment(
        ctx: Context,
        decision: Annotated[ElicitationResult[BudgetChoice], Resolve(budget_choice)],
        draft_id: Annotated[
            str | None, Field(description="Read model, config and tokens; record the plan.")
        ] = None,
        architecture: Annotated[
            dict[str, Any] | None,
            Field(
                # model_config, its name until 0.2, is still accepted
                validation_alias=AliasChoices("architecture", "model_config"),
                description="config.json keys (num_hidden_layers, hidden_size, ...; params).",
            ),
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
        answer = decision.data.choice if isinstance(decision, AcceptedElicitation) else "keep"
        draft, outcome = await _plan(
            ctx,
            draft_id,
            answer if client_can_elicit(ctx) else None,
            architecture=architecture,
            training=training,
            train_tokens=train_tokens,
            targets=targets,
            budget_usd=budget_usd,
            select=select,
        )
        shown = _answer(outcome.answer, selecting=select is not None, in_draft=draft is not None)
        if draft is None:
            return EstimateDeploymentResult(
                **shown,
                next_action="pass draft_id to record the plan, and select to choose a target",
            )
        section = deployment_section(outcome.step)
        return await record_step(
            ctx, draft, StepName.DEPLOYMENT, section, shown, EstimateDeploymentResult
        )

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
        config, prices, local = await hardware_facts(app_state(ctx), refresh)
        return json.dumps(deployment_estimator.describe_catalog(config, prices, local), indent=2)

    @mcp.resource(
        HARDWARE_URI + "/{hardware_id}",
        title="One hardware option",
        description="A Hugging Face flavor (spec and hourly price) or a GPU's spec.",
        mime_type="application/json",
    )
    @resource_errors
    async def hardware_item(hardware_id: str, ctx: Context) -> str:
        config = app_state(ctx).settings.deployment
        return json.dumps(deployment_estimator.describe_hardware(config, hardware_id), indent=2)
