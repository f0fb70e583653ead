"""Compact tool schemas for tools/list: every byte there is read by the model on every turn.

pydantic puts a `title` on every model and property, spells an optional value as
anyOf [X, null], and writes out defaults that JSON Schema already implies. Rewriting those keeps
the list small without changing what any schema accepts. Output schemas keep their field
descriptions: clients check results against them, and a description says what a field means
where its name does not.
"""

from typing import Any

# Keywords whose value maps names to subschemas: the names are data, not keywords.
_NAMED_SUBSCHEMAS = frozenset({"properties", "$defs", "definitions", "patternProperties"})
# An output schema describes what this server sends; the results themselves show every field,
# so their defaults and required-lists only cost bytes.
_OUTPUT_ONLY_NOISE = frozenset({"default", "examples", "required"})
_NULL = {"type": "null"}


def compact_schema(schema: Any, *, output: bool = False) -> Any:
    """`schema` without annotations: titles; for outputs also defaults and required-lists.

    For inputs, an optional parameter whose default is null is offered as just its type:
    leaving it out means the same as null, and a single `type` is what every client dialect
    (OpenAPI-style function declarations included) understands. Outputs keep their nulls,
    since results carry them and clients validate results against the schema.
    """
    if isinstance(schema, list):
        return [compact_schema(item, output=output) for item in schema]
    if not isinstance(schema, dict):
        return schema
    compact: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" or (output and key in _OUTPUT_ONLY_NOISE):
            continue
        if key == "additionalProperties" and value is True:
            continue  # what JSON Schema assumes anyway
        if key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            compact[key] = {name: compact_schema(sub, output=output) for name, sub in value.items()}
        else:
            compact[key] = compact_schema(value, output=output)
    if not output and isinstance(compact.get("properties"), dict):
        required = set(compact.get("required", ()))
        compact["properties"] = {
            name: sub if name in required else _optional_as_plain(sub)
            for name, sub in compact["properties"].items()
        }
    return compact


def _optional_as_plain(schema: Any) -> Any:
    """{anyOf: [X, null], default: null, ...} -> {...X, ...} for a parameter one may omit."""
    if not isinstance(schema, dict) or schema.get("default", ...) is not None:
        return schema
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or _NULL not in options:
        return schema
    (other,) = [option for option in options if option != _NULL]
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
    return {**rest, **other}
