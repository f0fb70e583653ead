"""configs/templates.yaml: the training templates, the rule per key and the cross-field rules.

Everything is cross-checked at start-up, so a typo in a rule or a template default that breaks
its own key's limits stops the server with the key's name instead of misleading a user later.
"""

from functools import cached_property
from typing import Annotated

from pydantic import Field, model_validator

from tools.config_base import ConfigModel
from tools.template_loader.derived import DERIVED_FIGURES
from tools.template_loader.issues import placeholders
from tools.template_loader.keys import Condition, KeyRule, Value, check_value, matches
from tools.template_loader.rules import (
    BandRule,
    ContextLengthRule,
    CrossFieldRule,
    ExclusiveRule,
    GpuBf16Rule,
    ImpliesRule,
)


class Template(ConfigModel):
    name: str
    description: Annotated[str, Field(min_length=20)]
    defaults: dict[str, Value]


class TemplatesConfig(ConfigModel):
    keys: dict[str, KeyRule]
    cross_field: list[CrossFieldRule]
    templates: Annotated[dict[str, Template], Field(min_length=1)]

    def starting_values(self, template_id: str) -> dict[str, Value]:
        """Key defaults overlaid by the template's own (typed as their keys say), before
        overrides and applicability. Start-up validation has accepted every one of them.
        A fresh dict for the caller to overlay."""
        return dict(self._starting[template_id])

    @cached_property
    def templates_by_method(self) -> dict[str, list[str]]:
        """The template ids that train each method, in the file's order."""
        found: dict[str, list[str]] = {}
        for template_id in self.templates:
            found.setdefault(str(self._starting[template_id]["method"]), []).append(template_id)
        return found

    @cached_property
    def _starting(self) -> dict[str, dict[str, Value]]:
        """Worked out once: every apply_template and every estimate starts from them."""
        return {template_id: self._typed_defaults(t) for template_id, t in self.templates.items()}

    def _typed_defaults(self, template: Template) -> dict[str, Value]:
        """Key defaults overlaid by `template`'s own, typed as their keys say."""
        found = {key: rule.default for key, rule in self.keys.items() if rule.default is not None}
        found.update(template.defaults)
        typed = {key: check_value(key, self.keys[key], value).value for key, value in found.items()}
        return {key: value for key, value in typed.items() if value is not None}

    @model_validator(mode="after")
    def _keys_consistent(self) -> "TemplatesConfig":
        problems = []
        for key, rule in self.keys.items():
            for value in [rule.default, rule.recommended, *(rule.enum or [])]:
                if value is not None:
                    problems.extend(f"keys.{key}: {p}" for p in _rejections(key, rule, value))
            if rule.only_with:
                problems.extend(self._condition_problems(f"keys.{key}.only_with", rule.only_with))
                nested = [k for k in rule.only_with if k in self.keys and self.keys[k].only_with]
                if nested:
                    problems.append(
                        f"keys.{key}.only_with names {', '.join(nested)}, which have an "
                        "only_with of their own; conditions may not chain"
                    )
                if rule.required and rule.default is None:
                    problems.append(
                        f"keys.{key}: a required key with only_with needs a default, for "
                        "templates that switch it on through an override"
                    )
        _fail_on(problems)
        return self

    @model_validator(mode="after")
    def _templates_consistent(self) -> "TemplatesConfig":
        problems = []
        for template_id, template in self.templates.items():
            where = f"templates.{template_id}.defaults"
            unknown = sorted(set(template.defaults) - set(self.keys))
            if unknown:
                problems.append(f"{where}: no rule in `keys` for {', '.join(unknown)}")
            for key, value in template.defaults.items():
                if key in self.keys:
                    checked = check_value(key, self.keys[key], value)
                    if checked.issues:
                        problems.append(f"{where}.{key}: {checked.issues[0].message}")
            if unknown:
                continue
            values = self._typed_defaults(template)
            missing = [
                key
                for key, rule in self.keys.items()
                if rule.required and key not in values and matches(rule.only_with, values)
            ]
            if missing:
                problems.append(f"{where}: required keys missing: {', '.join(missing)}")
            for rule in self.cross_field:
                if isinstance(rule, ExclusiveRule) and sum(k in values for k in rule.exclusive) > 1:
                    problems.append(f"{where}: sets more than one of {', '.join(rule.exclusive)}")
        _fail_on(problems)
        return self

    @model_validator(mode="after")
    def _rules_consistent(self) -> "TemplatesConfig":
        problems = []
        codes = [rule.code for rule in self.cross_field]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            problems.append(f"cross_field: codes used more than once: {', '.join(repeated)}")
        for rule in self.cross_field:
            where = f"cross_field[{rule.code}]"
            if rule.when:
                problems.extend(self._condition_problems(f"{where}.when", rule.when))
            subject = self._subject_problems(rule)
            problems.extend(f"{where}: {problem}" for problem in subject)
            if isinstance(rule, ImpliesRule) and not subject:
                problems.extend(
                    f"templates.{template_id}.defaults: contradicts {where}.implies"
                    for template_id in self.templates
                    if rule.implied(self.starting_values(template_id), {})
                )
            allowed = set(self.keys) | rule.placeholders()
            for text in rule.messages():
                try:
                    stray = placeholders(text) - allowed
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                if stray:
                    problems.append(f"{where}: unknown message fields {', '.join(sorted(stray))}")
        _fail_on(problems)
        return self

    def _subject_problems(self, rule: CrossFieldRule) -> list[str]:
        """What is wrong with the keys (or figure) a rule is about."""
        if isinstance(rule, BandRule):
            numeric = {k for k, key in self.keys.items() if key.type in ("int", "float")}
            if rule.figure in numeric or rule.figure in DERIVED_FIGURES:
                return []
            return [
                f"figure '{rule.figure}' is neither a numeric key nor one of "
                f"{', '.join(DERIVED_FIGURES)}"
            ]
        if isinstance(rule, ExclusiveRule):
            return [f"unknown key {key}" for key in rule.exclusive if key not in self.keys]
        if isinstance(rule, ImpliesRule):
            return self._implies_problems(rule)
        if isinstance(rule, ContextLengthRule | GpuBf16Rule):
            wanted = "int" if isinstance(rule, ContextLengthRule) else "bool"
            if rule.key not in self.keys:
                return [f"unknown key {rule.key}"]
            if self.keys[rule.key].type != wanted:
                return [f"key {rule.key} must be of type {wanted}"]
        return []

    def _implies_problems(self, rule: ImpliesRule) -> list[str]:
        """Keys and values an implication may not set: unknown, rejected, in its own `when`,
        or named by any implication's `when` (implications may not chain)."""
        problems = []
        triggers = {k for r in self.cross_field if isinstance(r, ImpliesRule) for k in r.when}
        for key, value in rule.implies.items():
            if key not in self.keys:
                problems.append(f"unknown key {key}")
                continue
            problems.extend(f"implies.{key}: {p}" for p in _rejections(key, self.keys[key], value))
            if key in triggers:
                problems.append(f"implies {key}, which an implication's `when` names")
        return problems

    def _condition_problems(self, where: str, condition: Condition) -> list[str]:
        problems = []
        for key, options in condition.items():
            if key not in self.keys:
                problems.append(f"{where}: unknown key {key}")
                continue
            rule = self.keys[key]
            for option in options:
                problems.extend(f"{where}.{key}: {p}" for p in _rejections(key, rule, option))
        return problems


def _rejections(key: str, rule: KeyRule, value: Value) -> list[str]:
    """Why the key's own rule rejects `value` (nothing when it accepts it)."""
    checked = check_value(key, rule, value)
    return [] if checked.accepted else [issue.message for issue in checked.issues]


def _fail_on(problems: list[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))
