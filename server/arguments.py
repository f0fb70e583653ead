"""Every tool's arguments checked before any work: the rules no name, path or value may break.

A NUL character is valid JSON but no path, database text or Hub id can hold one; a string of a
million characters is no ref or query anyone means; a number beyond 64 bits fits no setting.
Each refusal names the argument and the rule, and never repeats the value.
"""

from collections.abc import Mapping
from typing import Any

from tools.errors import UserError

NUL = "\x00"
MAX_INTEGER_BITS = 64


def check_arguments(arguments: Mapping[str, Any], max_chars: int) -> None:
    """UserError for the first argument (or item, or key inside one) that breaks a rule."""
    for name, value in arguments.items():
        _check(name, value, max_chars)


def _check(where: str, value: Any, max_chars: int) -> None:
    if isinstance(value, str):
        if NUL in value:
            raise UserError(
                f"{where} contains a NUL character (\\x00), which no name, path or value may "
                "hold; remove it."
            )
        if len(value) > max_chars:
            raise UserError(
                f"{where} is {len(value):,} characters long; an argument may have at most "
                f"{max_chars:,} (limits.max_argument_chars)."
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INTEGER_BITS:
            raise UserError(f"{where} is a number too large for any setting; use a smaller one.")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(f"{where}[{index}]", item, max_chars)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(f"{where} (a key)", key, max_chars)
            _check(f"{where}.{key}", item, max_chars)
