"""The rule for one configuration key, and the check that turns a user's value into a typed one.

A value that fails its hard limits (type, enum, min, max) is rejected; one outside the soft
limits (warn_below, warn_above) is kept with a warning.
"""

import difflib
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from tools.config_base import ConfigModel
from tools.template_loader.issues import ConfigIssue, show

Scalar = bool | int | float | str
Value = Scalar | list[str]
KeyType = Literal["int", "float", "bool", "str", "list[str]", "str|list[str]"]
Condition = dict[str, list[Scalar]]
"""Every named key holds one of the listed values (all must hold)."""

_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list[str]": "a list of strings",
    "str|list[str]": "a string or a list of strings",
}


class KeyRule(ConfigModel):
    """What one configuration key may hold; `default` fills keys a template leaves out."""

    description: str
    type: KeyType
    default: Value | None = None
    required: bool = Field(
        default=False, description="Every configuration it applies to must hold it."
    )
    only_with: Condition | None = Field(
        default=None, description="The key means something only when this condition holds."
    )
    min: float | None = None
    max: float | None = None
    warn_below: float | None = None
    warn_above: float | None = None
    recommended: Value | None = None
    enum: list[Scalar] | None = None
    aliases: list[str] = Field(
        default_factory=list, description="Other trainers' names for it, for 'did you mean'."
    )

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "KeyRule":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        numeric = self.type in ("int", "float")
        bounded = [self.min, self.max, self.warn_below, self.warn_above]
        if not numeric and any(b is not None for b in bounded):
            raise ValueError(f"min/max/warn_below/warn_above need a numeric type, not {self.type}")
        if numeric and (self.min is None or self.max is None):
            raise ValueError(
                "a numeric key needs min and max: they turn away a number such as "
                "10**500 that no trainer can hold"
            )
        return self


class Checked(BaseModel):
    """A value after its key's rule: `accepted` is False when a hard limit rejected it."""

    accepted: bool
    value: Value | None = None
    issues: list[ConfigIssue] = Field(default_factory=list)


def check_value(key: str, rule: KeyRule, raw: Any) -> Checked:
    """Coerce `raw` to the key's type, then apply enum, hard limits and soft limits."""
    value = _coerce(rule.type, raw)
    if value is None:
        return _reject(
            key,
            "wrong_type",
            f"{key} must be {_TYPE_WORDS[rule.type]}; got {_describe(raw)}.",
            _fix(key, rule),
        )
    if rule.enum is not None and not any(_same(value, allowed) for allowed in rule.enum):
        close = difflib.get_close_matches(str(value), [str(e) for e in rule.enum], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return _reject(
            key,
            "not_allowed",
            f"{key} '{show(value)}' is not one of: {', '.join(show(e) for e in rule.enum)}.{hint}",
            f"Set {key} to one of the listed values, or null for the template's value.",
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_number(key, rule, value)
    return Checked(accepted=True, value=value)


def matches(condition: Condition | None, values: Mapping[str, Any]) -> bool:
    """Whether every key of `condition` holds one of its listed values (same type, too)."""
    if not condition:
        return True
    return all(
        key in values and any(_same(values[key], allowed) for allowed in options)
        for key, options in condition.items()
    )


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python: a flag only ever equals a flag, while 2 and 2.0 are one number.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _check_number(key: str, rule: KeyRule, value: float) -> Checked:
    if rule.min is not None and value < rule.min:
        message = f"{key} {show(value)} is below the minimum of {show(rule.min)}."
        return _reject(key, "below_min", message, _fix(key, rule))
    if rule.max is not None and value > rule.max:
        message = f"{key} {show(value)} is above the maximum of {show(rule.max)}."
        return _reject(key, "above_max", message, _fix(key, rule))
    issues = []
    if rule.warn_below is not None and value < rule.warn_below:
        message = f"{key} {show(value)} is unusually low (below {show(rule.warn_below)})."
        issues.append(_warning(key, "unusually_low", message, rule))
    if rule.warn_above is not None and value > rule.warn_above:
        message = f"{key} {show(value)} is unusually high (above {show(rule.warn_above)})."
        issues.append(_warning(key, "unusually_high", message, rule))
    return Checked(accepted=True, value=value, issues=issues)


def _reject(key: str, code: str, message: str, fix: str) -> Checked:
    issue = ConfigIssue(severity="error", code=code, keys=[key], message=message, fix=fix)
    return Checked(accepted=False, issues=[issue])


def _warning(key: str, code: str, message: str, rule: KeyRule) -> ConfigIssue:
    if rule.recommended is not None:
        target = f"{show(rule.recommended)}, the usual value"
    else:
        low = show(rule.warn_below) if rule.warn_below is not None else show(rule.min)
        high = show(rule.warn_above) if rule.warn_above is not None else show(rule.max)
        target = f"a value between {low} and {high}"
    fix = f"Keep it if intended; otherwise set {key} to {target}."
    return ConfigIssue(severity="warning", code=code, keys=[key], message=message, fix=fix)


def _fix(key: str, rule: KeyRule) -> str:
    if rule.min is not None and rule.max is not None:
        span = f" between {show(rule.min)} and {show(rule.max)}"
    elif rule.min is not None:
        span = f" of at least {show(rule.min)}"
    elif rule.max is not None:
        span = f" of at most {show(rule.max)}"
    else:
        span = ""
    usual = f" ({show(rule.recommended)} is usual)" if rule.recommended is not None else ""
    return f"Set {key} to {_TYPE_WORDS[rule.type]}{span}{usual}, or null for the template's value."


def _coerce(key_type: KeyType, raw: Any) -> Value | None:
    """The value as `key_type`, or None when it cannot be one. Numbers may come as strings."""
    if key_type == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        return None
    if key_type in ("int", "float"):
        number = _number(raw)
        if number is None or (isinstance(number, int) and key_type == "int"):
            return number
        if key_type == "float":
            try:
                return float(number)
            except OverflowError:  # a whole number past any float: the key's max rejects it
                return number
        return int(number) if number.is_integer() else None
    if key_type in ("list[str]", "str|list[str]") and isinstance(raw, list):
        items = [item.strip() for item in raw if isinstance(item, str) and item.strip()]
        return items if items and len(items) == len(raw) else None
    if key_type in ("str", "str|list[str]") and isinstance(raw, str) and raw.strip():
        return raw.strip()
    return None


def _number(raw: Any) -> float | int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw.strip())
        except ValueError:
            return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and math.isfinite(raw):
        return raw
    return None


def _describe(raw: Any) -> str:
    """What the user gave instead: a scalar as written, an object or a list by its kind only."""
    if raw is None:
        return "null"
    if isinstance(raw, dict):
        return "an object"
    if isinstance(raw, list | tuple):
        return "a list"
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(raw), f"a {type(raw).__name__}"
    )
    return f"{show(raw)!r} ({kind})" if isinstance(raw, str) else f"{show(raw)} ({kind})"
