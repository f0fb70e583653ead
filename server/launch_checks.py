"""Whether a draft may be launched, where and with whose token: the checks a launch passes
before anyone is asked to pay for it.

Who pays decides what runs: over stdio the server works for one person and launches with their
own Hugging Face token (HF_TOKEN, else their stored login); over HTTP its only token is the
operator's, so Hub launches (and runs on the server's machine) are refused unless the operator
turned them on in configs/launch.yaml.
"""

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import anyio.to_thread
from mcp.server.mcpserver import Context

from server.drafts import DraftPackage, StepName, StepStatus
from server.settings import ENV_PREFIX, Secrets
from server.state import AppState, app_state, load_draft
from tools import hub_http, training_launcher
from tools.deployment_estimator.catalog import LOCAL
from tools.errors import UserError
from tools.training_launcher import PackageFacts


@dataclass(frozen=True)
class Ready:
    """A launch checked end to end, before anyone is asked to pay for it."""

    draft: DraftPackage
    package: PackageFacts
    where: Literal["hub", "local"]
    token: str | None
    plan: "training_launcher.HubPlan | None"

    @property
    def usd_per_hour(self) -> float:
        return self.plan.usd_per_hour if self.plan else self.package.usd_per_hour

    def timeout_hours(self, state: AppState) -> float:
        if self.plan:
            return self.plan.timeout_hours
        return training_launcher.timeout_hours(self.package.estimated_hours, state.settings.launch)


def hub_token(state: AppState) -> str | None:
    """The token Hub runs are paid with: over stdio the user's own (HF_TOKEN or their stored
    login); over HTTP the operator's HF_TOKEN, used only where the operator allowed it."""
    if state.secrets.hf_token is not None:
        return state.secrets.hf_token.get_secret_value()
    if state.transport == "stdio":
        from huggingface_hub import get_token

        return get_token()
    return None


def hub_endpoint(state: AppState) -> str | None:
    hub = state.settings.models.hub
    hub_http.install(hub)  # the retrying client, as for every Hub call
    return str(hub.endpoint).rstrip("/") if hub.endpoint else None


def refuse_over_http(state: AppState, where: Literal["hub", "local"]) -> None:
    sharing = state.settings.launch.sharing
    if state.transport != "http":
        return
    if where == "hub" and not sharing.hub_launches_over_http:
        raise UserError(
            "This shared server does not launch Hugging Face Jobs: its only token is the "
            "operator's, which would pay for everyone's runs. Launch from your own machine "
            "(the server over stdio with your HF_TOKEN), or train the package as its README "
            "says. (Operators: sharing.hub_launches_over_http in configs/launch.yaml.)"
        )
    if where == "local" and not sharing.local_runs_over_http:
        raise UserError(
            "This shared server does not run training on its own machine. Run the package "
            "where you are (its README says how), or pick a Hugging Face flavor. (Operators: "
            "sharing.local_runs_over_http in configs/launch.yaml.)"
        )


def withheld_from_local_runs(
    state: AppState, env: Mapping[str, str] = os.environ
) -> frozenset[str]:
    """What a local run must not inherit: the server's own variables (settings, token hashes,
    the drafts database) and its secrets, all of them over HTTP (there the Hub token is the
    operator's, not the user's); over stdio all but the Hub token, which is the user's own
    and lets train.py push the model to their account."""
    names = Secrets.env_names()
    if state.transport != "http":
        names.pop("hf_token")
    return frozenset((*names.values(), *(name for name in env if name.startswith(ENV_PREFIX))))


async def ready_to_launch(ctx: Context, draft_id: str, resume: bool) -> Ready:
    """The draft's package, where it runs and, on the Hub, the token's plan; UserError with the
    reason and the fix for each refusal."""
    state = app_state(ctx)
    draft = await load_draft(ctx, draft_id)
    if draft.next_step is not None or draft.package is None:
        stale = [s.value for s in StepName if draft.section(s).status is StepStatus.STALE]
        why = f"the {', '.join(stale)} step(s) are stale" if stale else "it is not finalized"
        raise UserError(
            f"Draft {draft.id} cannot be launched: {why}, so no package matches it. Nothing "
            f"stale is launched. Next: {draft.next_action}."
        )
    running = draft.launch
    if running is not None and not running.finished:
        raise UserError(
            f"Draft {draft.id} has a run {running.stage} on {running.target}: follow it with "
            f'training_status(draft_id="{draft.id}") or stop it with cancel_training first.'
        )
    if resume and running is None:
        raise UserError(f"Draft {draft.id} has no earlier run to resume: launch without resume.")
    folder = Path(draft.package.path)
    package = await anyio.to_thread.run_sync(training_launcher.read_package, folder)
    if (package.draft_id, package.draft_version) != (draft.id, draft.package.draft_version):
        raise UserError(
            f"The package in {folder} was not written from this version of draft {draft.id}. "
            f'Run finalize_package(draft_id="{draft.id}") again, then launch.'
        )
    settings = state.settings
    if package.target == LOCAL:
        refuse_over_http(state, "local")
        config = settings.launch
        await anyio.to_thread.run_sync(training_launcher.local_python, package, config)
        return Ready(draft, package, "local", None, None)
    if package.target not in settings.deployment.flavors:
        raise UserError(
            f"The package's target '{package.target}' is a GPU you name, not hardware this "
            "server can start: train it there as its README says, or select a Hugging Face "
            f'flavor or "local" with estimate_deployment(draft_id="{draft.id}", select=...) '
            "and finalize again."
        )
    refuse_over_http(state, "hub")
    token = hub_token(state)
    if token is None:
        raise UserError(
            "No Hugging Face token: set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens) or run `hf auth login`, then launch again. "
            "The run is paid by that token's account."
        )
    plan = await anyio.to_thread.run_sync(
        partial(
            training_launcher.plan_hub_launch,
            package,
            token,
            hub_endpoint(state),
            settings.launch,
            resume=resume,
        )
    )
    return Ready(draft, package, "hub", token, plan)


def launch_question(ready: Ready, state: AppState, resume: bool) -> str:
    package, hours = ready.package, ready.timeout_hours(state)
    where = (
        f"Hugging Face Jobs ({package.target}, paid by {ready.plan.account.name})"
        if ready.plan
        else "this machine"
    )
    action = "Resume" if resume else "Start"
    return (
        f"{action} training '{ready.draft.title}' on {where}? Estimated "
        f"{package.estimated_hours:.2f} h and ${package.estimated_cost_usd:.2f} at "
        f"${ready.usd_per_hour:.2f}/h; it is stopped after {hours:.2f} h, so it costs at "
        f"most ${hours * ready.usd_per_hour:.2f}."
    )


def owner_hash(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


def token_for_run(state: AppState) -> str:
    """The token a Hub run is followed or stopped with (the one that launched it, as a rule)."""
    refuse_over_http(state, "hub")
    token = hub_token(state)
    if token is None:
        raise UserError(
            "No Hugging Face token to reach the Job with: set HF_TOKEN (the token that "
            "launched it) or run `hf auth login`."
        )
    return token
