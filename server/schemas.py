"""Compact tool schemas for tools/list: every byte there is read by the model on every turn.

pydantic puts a `title` on every model and property, spells an optional value as
anyOf [X, null], and writes out defaults that JSON Schema already implies. Rewriting those, and
dropping descriptions on output fields the structured result makes plain, keeps the whole list
small without changing what any schema accepts.
"""

from typing import Any

# Keywords whose value maps names to subschemas: the names are data, not keywords.
_NAMED_SUBSCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
_OUTPUT_ONLY_NOISE = frozenset({"description", "default", "examples"})
_NULL = {"type": "null"}


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """An equivalent `schema` without annotations (titles; for outputs also descriptions)."""
    if isinstance(schema, list):
        return [compact_schema(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    compact: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or (output and key in _OUTPUT_ONLY_NOISE):
            continue
        implied = (key == "default" and value is None) or (
            key == "additionalProperties" and value is True
        )
        if implied:
            continue  # what JSON Schema assumes anyway
        if key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            compact[key] = {name: compact_schema(sub, output=output) for name, sub in value.items()}
        else:
            compact[key] = compact_schema(value, output=output)
    return _nullable_as_type(compact)


def _nullable_as_type(schema: dict[str, Any]) -> dict[str, Any]:
    """anyOf [{type: T, ...}, {type: null}] -> {type: [T, null], ...} (same instances valid)."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or _NULL not in options:
        return schema
    (other,) = [option for option in options if option != _NULL]
    if not isinstance(other.get("type"), str) or set(other) & set(schema):
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**merged, **other, "type": [other["type"], "null"]}
