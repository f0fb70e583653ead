"""Columns a format does not know: the closest mapping onto one, and the mapping a user gives.

A CSV or JSON file whose columns are `customer_msg` and `agent_reply` matches no format. Rather
than an error per record, the scan reports the columns once with the mapping that would make
them one (`'customer_msg' -> prompt, 'agent_reply' -> completion`), found from the synonym table in
configs/datasets.yaml and name similarity; validate_datasets' `columns` argument applies such a
mapping as the records are read, so nobody has to edit the file.
"""

import difflib
import re
from collections.abc import Mapping
from typing import Any

import orjson

from tools.dataset_validator.config import ColumnsConfig
from tools.dataset_validator.kinds import FORMAT_FIELDS, TARGET_FIELDS, Format
from tools.errors import UserError
from tools.quoting import quote, quote_list

_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_EXACT, _WORD_MATCH = 3.0, 1.5
"""Scores: a similar whole name scores 1 + its ratio (over 1.8 at the default cutoff), so
`promt` is the prompt before `user_id` is."""


def checked_mapping(columns: Mapping[str, str] | None, max_quoted: int) -> dict[str, str]:
    """The `columns` argument as a mapping to apply; UserError when a target is no field a
    format reads or two columns would become one field."""
    mapping = dict(columns or {})
    unknown = sorted({t for t in mapping.values() if t not in TARGET_FIELDS})
    if unknown:
        raise UserError(
            f"columns maps to {quote_list(unknown, max_quoted)}, which no format reads; map "
            f"columns to {', '.join(sorted(TARGET_FIELDS))}."
        )
    targets = list(mapping.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        sources = [s for s, t in mapping.items() if t in twice]
        raise UserError(
            f"columns maps {quote_list(sources, max_quoted)} to the same field "
            f"({', '.join(twice)}); map one column to each field."
        )
    if any(not 0 < len(source) <= max_quoted for source in mapping):
        raise UserError(
            f"columns names a column that is empty or longer than {max_quoted} characters "
            "(limits.max_quoted_chars); give each column as the file names it."
        )
    return mapping


def rename(record: dict[str, Any], mapping: Mapping[str, str], max_quoted: int) -> dict[str, Any]:
    """The record with its columns renamed; UserError when a new name is taken already."""
    if not any(key in mapping for key in record):
        return record
    renamed = {mapping.get(key, key): value for key, value in record.items()}
    if len(renamed) < len(record):
        source, target = next(
            (s, t) for s, t in mapping.items() if s in record and t in record and t not in mapping
        )
        raise UserError(
            f"columns renames {quote(source, max_quoted)} to {quote(target, max_quoted)}, but "
            f"a record has both; map {quote(source, max_quoted)} to another field, or leave "
            "it out of columns."
        )
    return renamed


def unknown_columns(columns: list[str], config: ColumnsConfig, max_quoted: int) -> tuple[str, str]:
    """(message, fix) for records none of whose columns a format reads: the columns, and the
    closest mapping onto a format with the `columns` argument that applies it."""
    names = [c for c in columns[: config.max_columns_matched] if len(c) <= max_quoted]
    mapping = _closest(names, config)
    listed = quote_list(columns, max_quoted)
    fmt, missing = _format_for(set(mapping.values()))
    message = f"no record has a field any format reads; the columns are {listed}"
    if fmt is None:
        return (
            f"{message}, and none looks like one.",
            "Rename the columns to a format's fields (messages; conversations; "
            "instruction/output; prompt/completion; chosen/rejected; text), or pass "
            'validate_datasets columns={"your_column": "prompt", ...}.',
        )
    required, optional = FORMAT_FIELDS[fmt]
    kept = {s: t for s, t in mapping.items() if t in required or t in optional}
    shown = ", ".join(f"{quote(s, max_quoted)} -> {t}" for s, t in kept.items())
    argument = f"columns={orjson.dumps(kept).decode()}"
    if missing:
        return (
            f"{message}. Closest mapping onto {fmt}: {shown}; no column looks like "
            f"{' or '.join(missing)} ({fmt} needs {' and '.join(required)}).",
            f"Pass validate_datasets {argument} with a column for {' and '.join(missing)} "
            "added, or rename the columns in the file.",
        )
    return (
        f"{message}. Closest mapping onto {fmt}: {shown}.",
        f"If that is right, call validate_datasets again with {argument} (the columns are "
        "renamed as the file is read), or rename them in the file.",
    )


def _closest(columns: list[str], config: ColumnsConfig) -> dict[str, str]:
    """Each column's best field, best matches first, one column per field: the field's name
    or a synonym as the whole name, a similar whole name, a synonym as one of its words."""
    names = {target: [target, *config.synonyms.get(target, [])] for target in TARGET_FIELDS}
    scored = []
    for position, column in enumerate(columns):
        words = [w.lower() for w in _WORD.findall(column)]
        whole = "_".join(words)
        for target, known in names.items():
            if whole in known:
                score = _EXACT
            elif any(word in known for word in words):
                score = _WORD_MATCH
            else:
                ratio = max(difflib.SequenceMatcher(None, whole, name).ratio() for name in known)
                if ratio < config.similarity_cutoff:
                    continue
                score = 1 + ratio
            scored.append((-score, position, column, target))
    mapping: dict[str, str] = {}
    for _, _, column, target in sorted(scored):
        if column not in mapping and target not in mapping.values():
            mapping[column] = target
    return dict(sorted(mapping.items(), key=lambda item: columns.index(item[0])))


def _format_for(targets: set[str]) -> tuple[Format | None, list[str]]:
    """The format the mapped fields make most of: (format, required fields still missing)."""
    best: tuple[Format | None, list[str]] = (None, [])
    best_key = (0.0, 0)
    for fmt, (required, _) in FORMAT_FIELDS.items():
        covered = sum(field in targets for field in required)
        key = (covered / len(required), covered)
        if covered and key > best_key:
            best, best_key = (fmt, [f for f in required if f not in targets]), key
    return best
