"""Quote a value someone else wrote, in bounded space, so it can never flood a message.

Dataset text, catalog descriptions and arguments reach messages that the assistant reads and
drafts keep: a 2 MiB `role` or a million-key object must come back as a short, escaped excerpt
that says how long the original was.
"""

from collections.abc import Iterable
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
        return excerpt(_as_json(value, max_chars), max_chars)
    if len(value) <= max_chars:
        return repr(value)
    shown = repr(value[:max_chars])
    return f"{shown[:-1]}{ELLIPSIS}{shown[-1]} ({len(value):,} characters)"


def quote_list(values: Iterable[Any], max_chars: int) -> str:
    """Values quoted one after another while they fit in about `max_chars`, then how many more:
    `'id', 'aaaa…' (1,048,576 characters) and 8 more`; the rest are only counted."""
    shown: list[str] = []
    used = more = 0
    for value in values:
        if used >= max_chars:
            more += 1
            continue
        shown.append(quote(value, max_chars - used))
        used += len(shown[-1])
    listed = ", ".join(shown) or "none"
    return f"{listed} and {more:,} more" if more else listed


def excerpt(text: str, max_chars: int) -> str:
    """`text` as it is, or its first `max_chars` characters, an ellipsis and its full length:
    for text shown as text (a previewed turn, a catalog description) rather than in a message."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}{ELLIPSIS} ({len(text):,} characters)"


def _as_json(value: Any, max_chars: int) -> str:
    """Compact JSON, or the start of its repr when the value has no JSON form."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return repr(value)[: max_chars + 1]
