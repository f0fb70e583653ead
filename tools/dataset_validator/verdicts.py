"""A record's verdict, as the validator and the packager both reach it: its format, and either
its Example or the problems that keep it out of training.

The packager reads every record again and must keep exactly the records the validation kept
and drop exactly those it dropped (drop_invalid), by the same first problem: one function
decides for both.
"""

from typing import Any

from tools.dataset_validator.formats import KNOWN_FIELDS, Example, FormatChecker, detect
from tools.dataset_validator.kinds import ErrorCode, Format
from tools.dataset_validator.readers import ReadError
from tools.quoting import quote_list

Problem = tuple[ErrorCode, str | None, str]
"""(code, JSON path of the field at fault or None, message)."""


def judge(
    value: Any, checker: FormatChecker, max_quoted: int
) -> tuple[Format | None, Example | None, list[Problem]]:
    """(format, Example or None, problems): one problem per code, in the order found."""
    if type(value) is dict:
        fmt = detect(value)
        if fmt is None:
            keys = quote_list(value, max_quoted)
            message = f"no known field ({', '.join(KNOWN_FIELDS)}); the record has: {keys}"
            return None, None, [(ErrorCode.MISSING_FIELD, None, message)]
        example, problems = checker.check(fmt, value)
        if example is not None:
            return fmt, example, []
        first: dict[ErrorCode, Problem] = {}
        for code, path, text in problems:
            first.setdefault(code, (code, path, text))
        return fmt, None, list(first.values())
    if type(value) is ReadError:
        return None, None, [(value.code, None, value.message)]
    message = f"the record is a JSON {_json_kind(value)}, not an object"
    return None, None, [(ErrorCode.NOT_AN_OBJECT, None, message)]


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"
