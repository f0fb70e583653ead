"""Cross-field rules: each kind's parameters, message and fix come from configs/templates.yaml.

A rule fires only when its `when` condition holds. Rules that need another step's result
(model, deployment target) say what they wait for until that step has run. Whether the data
fits the template is judged on the datasets step, the later of the two (dataset_validator.fit).
"""

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tools.config_base import ConfigModel
from tools.issues import Severity
from tools.template_loader.derived import DERIVED_FIGURES
from tools.template_loader.facts import CrossStepFacts
from tools.template_loader.issues import ConfigIssue, render
from tools.template_loader.keys import Condition, Value, matches

Provenance = Literal["template", "override", "default", "implied"]
"""Where a value came from; "implied": another key's value brought it (an `implies` rule)."""


@dataclass(frozen=True)
class RuleInput:
    """What a rule looks at: the merged configuration, its numbers, the other steps' facts."""

    values: Mapping[str, Value]
    figures: Mapping[str, float]
    facts: CrossStepFacts


@dataclass(frozen=True)
class Outcome:
    issues: list[ConfigIssue]
    pending: str | None = None


class _Rule(ConfigModel):
    code: str
    when: Condition | None = None

    def keys(self) -> list[str]:
        """The configuration keys the rule is about (reported with its issues)."""
        return list(self.when or {})

    @abstractmethod
    def messages(self) -> list[str]:
        """Every message template, for the placeholder check at start-up."""

    def placeholders(self) -> set[str]:
        """Names a message may use besides the configuration's keys."""
        return set()

    def applies(self, given: RuleInput) -> bool:
        return matches(self.when, given.values)

    @abstractmethod
    def evaluate(self, given: RuleInput) -> Outcome:
        """The issues the rule finds, or what it waits for."""


class _Finding(_Rule):
    """A rule that reports what it finds as issues of its severity."""

    severity: Severity

    def _issue(self, message: str, fix: str, given: RuleInput, **extra: Any) -> ConfigIssue:
        values = {**given.values, **extra}
        return ConfigIssue(
            severity=self.severity,
            code=self.code,
            keys=self.keys(),
            message=render(message, values),
            fix=render(fix, values),
        )


class CombinationRule(_Finding):
    """Fires when the keys hold the listed values together (e.g. adapter qlora, 16-bit base)."""

    kind: Literal["combination"]
    when: Condition
    message: str
    fix: str

    def messages(self) -> list[str]:
        return [self.message, self.fix]

    def evaluate(self, given: RuleInput) -> Outcome:
        return Outcome([self._issue(self.message, self.fix, given)])


class ExclusiveRule(_Finding):
    """At most one of `exclusive` may be set. An override of one replaces the others' template
    values before the rules run; only two values the user set themselves are an error."""

    kind: Literal["exclusive"]
    exclusive: Annotated[list[str], Field(min_length=2)]
    message: str
    fix: str

    def keys(self) -> list[str]:
        return list(self.exclusive)

    def messages(self) -> list[str]:
        return [self.message, self.fix]

    def replaced(self, provenance: Mapping[str, Provenance]) -> list[str]:
        """The keys to drop because the user overrode exactly one of the group."""
        present = [key for key in self.exclusive if key in provenance]
        overridden = [key for key in present if provenance[key] == "override"]
        return [key for key in present if key not in overridden] if len(overridden) == 1 else []

    def evaluate(self, given: RuleInput) -> Outcome:
        present = [key for key in self.exclusive if key in given.values]
        return Outcome([self._issue(self.message, self.fix, given)] if len(present) > 1 else [])


class ImpliesRule(_Rule):
    """When `when` holds, the keys of `implies` take its values unless the user set them
    (adapter qlora means a 4-bit base). Applied while merging, with a note; it finds no issues,
    so a value the user set against it meets the rules that check the combination."""

    kind: Literal["implies"]
    when: Condition
    implies: Annotated[dict[str, Value], Field(min_length=1)]
    note: str

    def keys(self) -> list[str]:
        return [*self.when, *self.implies]

    def messages(self) -> list[str]:
        return [self.note]

    def implied(
        self, values: Mapping[str, Value], provenance: Mapping[str, Provenance]
    ) -> dict[str, Value]:
        """The values to set: those of `implies` the configuration lacks and the user left."""
        if not matches(self.when, values):
            return {}
        return {
            key: value
            for key, value in self.implies.items()
            if provenance.get(key) != "override" and not matches({key: [value]}, values)
        }

    def evaluate(self, given: RuleInput) -> Outcome:
        return Outcome([])


class BandLimit(ConfigModel):
    limit: float
    message: str
    fix: str


class BandRule(_Finding):
    """A figure (a numeric key or a derived one) outside [below.limit, above.limit]."""

    kind: Literal["band"]
    figure: str
    below: BandLimit | None = None
    above: BandLimit | None = None

    @model_validator(mode="after")
    def _has_a_limit(self) -> "BandRule":
        if self.below is None and self.above is None:
            raise ValueError("a band needs `below`, `above` or both")
        if self.below and self.above and self.below.limit > self.above.limit:
            raise ValueError(f"below ({self.below.limit}) exceeds above ({self.above.limit})")
        return self

    def keys(self) -> list[str]:
        return list(DERIVED_FIGURES.get(self.figure, (self.figure,)))

    def messages(self) -> list[str]:
        sides = [side for side in (self.below, self.above) if side is not None]
        return [text for side in sides for text in (side.message, side.fix)]

    def placeholders(self) -> set[str]:
        return {"value", "limit"}

    def evaluate(self, given: RuleInput) -> Outcome:
        value = given.figures.get(self.figure)
        if value is None:
            return Outcome([])
        if self.below is not None and value < self.below.limit:
            side = self.below
        elif self.above is not None and value > self.above.limit:
            side = self.above
        else:
            return Outcome([])
        return Outcome([self._issue(side.message, side.fix, given, value=value, limit=side.limit)])


class _CrossStepKeyRule(_Finding):
    """A rule about one configuration key and another step's result: until that step has run,
    it says it is pending."""

    key: str
    message: str
    fix: str
    pending: str

    def keys(self) -> list[str]:
        return [self.key]

    def messages(self) -> list[str]:
        return [self.message, self.fix, self.pending]


class ContextLengthRule(_CrossStepKeyRule):
    """`key` (a token count) must not exceed the selected model's context length."""

    kind: Literal["context_length"]

    def placeholders(self) -> set[str]:
        return {"value", "context_length", "model"}

    def evaluate(self, given: RuleInput) -> Outcome:
        model = given.facts.model
        if model is None or model.context_length is None:
            return Outcome([], pending=render(self.pending, given.values))
        value = given.values.get(self.key)
        if not isinstance(value, int) or value <= model.context_length:
            return Outcome([])
        extra = {"value": value, "context_length": model.context_length, "model": model.model_id}
        return Outcome([self._issue(self.message, self.fix, given, **extra)])


class GpuBf16Rule(_CrossStepKeyRule):
    """`key` (a bf16 switch) set on a deployment target whose GPU has no bf16."""

    kind: Literal["gpu_bf16"]

    def placeholders(self) -> set[str]:
        return {"target", "gpu"}

    def evaluate(self, given: RuleInput) -> Outcome:
        target = given.facts.target
        if target is None:
            return Outcome([], pending=render(self.pending, given.values))
        if given.values.get(self.key) is not True or target.supports_bf16 is not False:
            return Outcome([])
        extra = {"target": target.target, "gpu": target.gpu}
        return Outcome([self._issue(self.message, self.fix, given, **extra)])


CrossFieldRule = Annotated[
    CombinationRule | ExclusiveRule | ImpliesRule | BandRule | ContextLengthRule | GpuBf16Rule,
    Field(discriminator="kind"),
]
