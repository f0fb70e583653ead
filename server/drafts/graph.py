"""The steps depend on each other: model -> config -> datasets -> deployment.

A later step was made from facts of earlier ones: the config is checked against the model, the
datasets' token counts use the model's tokenizer and the config's max_seq_length, and they are
judged against the config's template (its method, its KTO weights); the deployment estimate
uses all three. When a step is recorded with different facts, each
later step that used them is out of date; `affected` says which and why, in words a user can
follow ("the model changed from X to Y after this step").
"""

from collections.abc import Callable
from typing import Any

from server.drafts.model import DraftPackage, StepName, StepStatus

Facts = Callable[[dict[str, Any]], Any]


def _model(payload: dict[str, Any]) -> Any:
    return payload.get("model_id"), payload.get("revision")


def _config(payload: dict[str, Any]) -> Any:
    return payload.get("config") or {}


# The config keys a dataset report depends on: the length it measures records against, and
# what it judges the data against besides the template's name: the method, KTO's label weights.
WEIGHT_KEYS = ("desirable_weight", "undesirable_weight")
DATA_KEYS = ("max_seq_length", "method", *WEIGHT_KEYS)


def _data_shaping(payload: dict[str, Any]) -> Any:
    """What of the config a dataset report depends on: the template and DATA_KEYS."""
    config = _config(payload)
    return {"template": payload.get("template"), **{key: config.get(key) for key in DATA_KEYS}}


def _datasets(payload: dict[str, Any]) -> Any:
    datasets = payload.get("datasets") or []
    refs = tuple((d.get("ref"), d.get("sha256")) for d in datasets if isinstance(d, dict))
    split = (payload.get("split") or {}).get("validation_records")
    return refs, payload.get("train_tokens"), split


# For each step, the earlier steps it was made from and which of their facts it used.
DEPENDS_ON: dict[StepName, dict[StepName, Facts]] = {
    StepName.MODEL: {},
    StepName.CONFIG: {StepName.MODEL: _model},
    StepName.DATASETS: {StepName.MODEL: _model, StepName.CONFIG: _data_shaping},
    StepName.DEPLOYMENT: {
        StepName.MODEL: _model,
        StepName.CONFIG: _config,
        StepName.DATASETS: _datasets,
    },
}


def later_steps(step: StepName) -> list[StepName]:
    """The steps after `step`, in order."""
    order = list(StepName)
    return order[order.index(step) + 1 :]


def change(step: StepName, before: dict[str, Any], after: dict[str, Any], later: StepName) -> str:
    """Why `later` is out of date when `step` went from `before` to `after` ("" if it is not:
    the facts it used did not change)."""
    facts = DEPENDS_ON[later].get(step)
    if facts is None or facts(before) == facts(after):
        return ""
    if step is StepName.MODEL:
        return f"the model changed from {before.get('model_id')} to {after.get('model_id')}"
    if step is StepName.CONFIG:
        old, new = facts(before), facts(after)
        keys = sorted(k for k in {*old, *new} if old.get(k) != new.get(k))
        shown = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys[:3])
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return f"the config changed ({shown}{more})"
    tokens = (before.get("train_tokens"), after.get("train_tokens"))
    return f"the datasets changed ({tokens[0] or 0:,} -> {tokens[1] or 0:,} train tokens)"


def waits_for(draft: DraftPackage, step: StepName) -> StepName | None:
    """The first earlier step `step` is made from that is not valid in `draft`, if any."""
    return next(
        (up for up in DEPENDS_ON[step] if draft.section(up).status is not StepStatus.VALID),
        None,
    )
