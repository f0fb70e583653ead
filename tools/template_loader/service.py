"""apply_template: a template, the user's overrides and the other steps' facts -> a checked config.

Problems come back as data (errors, warnings) the assistant can explain; only a template that
does not exist is raised, because then there is nothing to return.
"""

import difflib
from collections.abc import Collection, Mapping
from typing import Any

from tools.errors import UserError
from tools.template_loader.config import Template, TemplatesConfig
from tools.template_loader.derived import derive
from tools.template_loader.facts import CrossStepFacts
from tools.template_loader.issues import ConfigIssue, render, show
from tools.template_loader.keys import Value, check_value, matches
from tools.template_loader.results import TemplateCatalog, TemplateResult, TemplateSummary
from tools.template_loader.rules import ExclusiveRule, ImpliesRule, Provenance, RuleInput


def apply_template(
    config: TemplatesConfig,
    template_id: str,
    overrides: Mapping[str, Any] | None = None,
    facts: CrossStepFacts | None = None,
    carried: Collection[str] = (),
) -> TemplateResult:
    """`carried`: override keys set under another template (carried_overrides); each that
    differs from this template's value gets a note, so the user is asked whether to keep it."""
    template_id, template = find_template(config, template_id)
    facts = facts or CrossStepFacts()
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    values, provenance, issues, notes = _merge(config, template_id, template, overrides)
    notes += _carried_notes(config, template_id, values, provenance, carried)
    derived = derive(values, facts)
    numbers = {k: float(v) for k, v in values.items() if _is_number(v)}
    given = RuleInput(values, {**numbers, **derived.figures()}, facts)
    pending = []
    for rule in config.cross_field:
        if rule.applies(given):
            outcome = rule.evaluate(given)
            issues.extend(outcome.issues)
            if outcome.pending:
                pending.append(outcome.pending)
    errors = [issue for issue in issues if issue.severity == "error"]
    return TemplateResult(
        template=template_id,
        method=str(values["method"]),
        valid=not errors,
        config=values,
        provenance=provenance,
        errors=errors,
        warnings=[issue for issue in issues if issue.severity == "warning"],
        derived=derived,
        overrides=overrides,
        notes=notes,
        pending=pending,
    )


def merge_overrides(
    config: TemplatesConfig, previous: Mapping[str, Any], new: Mapping[str, Any]
) -> dict[str, Any]:
    """The overrides recorded before, updated by new ones: null reverts a key to the template,
    and setting one key of an exclusive group (warmup_steps) forgets the others (warmup_ratio)."""
    merged = dict(previous)
    for key, value in new.items():
        merged.pop(key, None)
        if value is None:
            continue
        for rule in config.cross_field:
            if isinstance(rule, ExclusiveRule) and key in rule.exclusive:
                for other in rule.exclusive:
                    if other not in new:
                        merged.pop(other, None)
        merged[key] = value
    return merged


def carried_overrides(
    config: TemplatesConfig,
    earlier_template: str | None,
    template_id: str,
    previous: Mapping[str, Any],
    new: Mapping[str, Any],
) -> list[str]:
    """The earlier overrides (set under `earlier_template`) that a switch to another template
    keeps without the user giving them again; none when the template stays the same."""
    if earlier_template is None or find_template(config, template_id)[0] == earlier_template:
        return []
    return [key for key in previous if key not in new]


def describe_templates(config: TemplatesConfig, template_id: str | None = None) -> TemplateCatalog:
    """The templates (or one), each with the configuration it gives when nothing is overridden."""
    chosen = [template_id] if template_id else list(config.templates)
    summaries = []
    for name in chosen:
        tid, template = find_template(config, name)
        result = apply_template(config, tid)
        summaries.append(
            TemplateSummary(
                id=tid,
                name=template.name,
                description=template.description,
                method=result.method,
                adapter=str(result.config["adapter"]),
                defaults=result.config,
            )
        )
    return TemplateCatalog(templates=summaries, keys=config.keys)


def find_template(config: TemplatesConfig, template_id: str) -> tuple[str, Template]:
    """The template and its id, matched regardless of case and surrounding spaces."""
    for candidate in (template_id, template_id.strip().lower()):
        if candidate in config.templates:
            return candidate, config.templates[candidate]
    known = list(config.templates)
    close = difflib.get_close_matches(template_id.strip().lower(), known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise UserError(
        f"There is no template '{template_id}'.{hint} Pick one of: {', '.join(known)} "
        "(package://templates describes each)."
    )


def _merge(
    config: TemplatesConfig, template_id: str, template: Template, overrides: Mapping[str, Any]
) -> tuple[dict[str, Value], dict[str, Provenance], list[ConfigIssue], list[str]]:
    """Key defaults, then the template, then each accepted override; then the keys that do not
    apply here are left out. Values come back in the order of `keys` in the YAML."""
    values = config.starting_values(template_id)
    provenance: dict[str, Provenance] = {
        key: "template" if key in template.defaults else "default" for key in values
    }
    issues: list[ConfigIssue] = []
    for key, raw in overrides.items():
        rule = config.keys.get(key)
        if rule is None:
            issues.append(_unknown_key(config, key))
            continue
        checked = check_value(key, rule, raw)
        issues.extend(checked.issues)
        if checked.accepted and checked.value is not None:
            values[key], provenance[key] = checked.value, "override"
    notes = _apply_implied(config, values, provenance)
    notes += _replace_exclusive(config, values, provenance)
    issues.extend(_drop_inapplicable(config, values, provenance))
    ordered = [key for key in config.keys if key in values]
    return (
        {key: values[key] for key in ordered},
        {key: provenance[key] for key in ordered},
        issues,
        notes,
    )


def _is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unknown_key(config: TemplatesConfig, key: str) -> ConfigIssue:
    names = {name: name for name in config.keys}
    names.update({alias: name for name, rule in config.keys.items() for alias in rule.aliases})
    folded = {name.lower(): target for name, target in names.items()}
    target = folded.get(key.strip().lower())
    if target is None:
        close = difflib.get_close_matches(key.strip().lower(), list(folded), n=1)
        target = folded[close[0]] if close else None
    if target is not None:
        message, fix = f"Unknown key '{key}'. Did you mean '{target}'?", f"Use '{target}'."
    else:
        message = f"Unknown key '{key}'."
        fix = "Use one of: " + ", ".join(config.keys) + " (package://templates describes each)."
    return ConfigIssue(severity="error", code="unknown_key", keys=[key], message=message, fix=fix)


def _apply_implied(
    config: TemplatesConfig, values: dict[str, Value], provenance: dict[str, Provenance]
) -> list[str]:
    """Set what the `implies` rules imply (adapter qlora: a 4-bit base), each with its note."""
    notes = []
    for rule in config.cross_field:
        if not isinstance(rule, ImpliesRule):
            continue
        implied = rule.implied(values, provenance)
        for key, value in implied.items():
            typed = check_value(key, config.keys[key], value).value  # accepted at start-up
            values[key] = value if typed is None else typed
            provenance[key] = "implied"
        if implied:
            notes.append(render(rule.note, values))
    return notes


def _carried_notes(
    config: TemplatesConfig,
    template_id: str,
    values: dict[str, Value],
    provenance: dict[str, Provenance],
    carried: Collection[str],
) -> list[str]:
    """A note per carried override still in force whose value is not this template's own."""
    own = config.starting_values(template_id)
    notes = []
    for key in carried:
        if provenance.get(key) != "override" or (key in own and matches({key: [own[key]]}, values)):
            continue
        theirs = f"'s value is {show(own[key])}" if key in own else " leaves it unset"
        notes.append(
            f"{key} {show(values[key])} is carried over from your earlier overrides; the "
            f"{template_id} template{theirs}. Ask the user which to keep (null takes the "
            "template's)."
        )
    return notes


def _replace_exclusive(
    config: TemplatesConfig, values: dict[str, Value], provenance: dict[str, Provenance]
) -> list[str]:
    notes = []
    for rule in config.cross_field:
        if not isinstance(rule, ExclusiveRule):
            continue
        dropped = rule.replaced(provenance)
        chosen = [key for key in rule.exclusive if provenance.get(key) == "override"]
        for key in dropped:
            notes.append(
                f"Your {chosen[0]} replaces the {provenance[key]} value {key} "
                f"{show(values[key])}: the two are exclusive."
            )
            del values[key], provenance[key]
    return notes


def _drop_inapplicable(
    config: TemplatesConfig, values: dict[str, Value], provenance: dict[str, Provenance]
) -> list[ConfigIssue]:
    """Leave out keys that mean nothing here (lora_r without an adapter); warn if overridden."""
    issues = []
    for key in list(values):
        condition = config.keys[key].only_with
        if matches(condition, values):
            continue
        if provenance[key] == "override":
            needs = " and ".join(
                f"{name} {' or '.join(show(option) for option in options)}"
                for name, options in (condition or {}).items()
            )
            issues.append(
                ConfigIssue(
                    severity="warning",
                    code="not_applicable",
                    keys=[key],
                    message=f"{key} only applies with {needs}, so it was left out.",
                    fix=f"Remove the {key} override, or change the template.",
                )
            )
        del values[key], provenance[key]
    return issues
