"""Quote a value someone else wrote, in bounded space, so it can never flood a message.

Dataset text, catalog descriptions and arguments reach messages that the assistant reads and
drafts keep: a 2 MiB `role` or a million-key object must come back as a short, escaped excerpt
that says how long the original was.
"""

from typing import Any

import orjson

ELLIPSIS = "…"


def quote(value: Any, max_chars: int) -> str:
    """`value` as an escaped Python-style literal of at most `max_chars` of its characters.

    A longer value is cut, ends in an ellipsis and states its full length:
    `'aaaa…' (2,097,152 characters)`. Values other than strings are shown as compact JSON.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = int(value.bit_length() * 0.30103) + 1  # log10(2): no str() of a huge int
        return f"a number of about {digits:,} digits"
    if not isinstance(value, str):
        text = _as_json(value, max_chars)
        if len(text) <= max_chars:
            return text
        return f"{text[:max_chars]}{ELLIPSIS} ({len(text):,} characters)"
    if len(value) <= max_chars:
        return repr(value)
    shown = repr(value[:max_chars])
    return f"{shown[:-1]}{ELLIPSIS}{shown[-1]} ({len(value):,} characters)"


def _as_json(value: Any, max_chars: int) -> str:
    """Compact JSON, or the start of its repr when the value has no JSON form."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)[: max_chars + 1]
