"""What a check found: an error (the config cannot be used) or a warning (it can, but look)."""

import math
import string
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tools.issues import Issue

INT64_BITS = 64
"""The widest whole number a trainer takes; a wider one is shown by its order of magnitude."""


class ConfigIssue(Issue):
    """The shared issue model, with the configuration keys the finding is about."""

    keys: list[str] = Field(default_factory=list)


def placeholders(text: str) -> set[str]:
    """The `{name}` fields a message template refers to; values are shown by `show`, so plain."""
    names = set()
    for _, field, spec, conversion in string.Formatter().parse(text):
        if field is None:
            continue
        if spec or conversion or not field.isidentifier():
            raise ValueError(f"use plain {{name}} fields in messages, not {{{field}...}}")
        names.add(field)
    return names


def show(value: Any) -> str:
    """A value as the user wrote it in JSON: true, 0.0002, [q_proj, v_proj]; a whole number
    wider than 64 bits as `about 10^500`, never its digits (thousands, and str() refuses them
    past 4,300)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and value.bit_length() > INT64_BITS:
        sign = "-" if value < 0 else ""
        return f"about {sign}10^{math.floor(math.log10(abs(value)))}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return "unset" if value is None else str(value)


class _Shown(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "unset"


def render(text: str, values: Mapping[str, Any]) -> str:
    """Fill a message template; a key that is not in the configuration reads 'unset'."""
    return text.format_map(_Shown({key: show(value) for key, value in values.items()}))
