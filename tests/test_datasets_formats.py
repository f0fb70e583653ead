"""Format detection and the per-format checks, record by record (no files involved)."""

import itertools
from pathlib import Path
from typing import Any

import pytest

from server.settings import load_settings
from tests.support import isolated_env
from tools.dataset_validator.content import ContentReader, Reading
from tools.dataset_validator.conversation import (
    ROLE_OF_TAG,
    WELL_ORDERED,
    Conversation,
    MessageReader,
    _order_problem,
)
from tools.dataset_validator.formats import Example, FormatChecker, detect
from tools.dataset_validator.kinds import ErrorCode, Format, Role


@pytest.fixture(scope="module")
def checker(tmp_path_factory: pytest.TempPathFactory) -> FormatChecker:
    settings = load_settings(env=isolated_env(tmp_path_factory.mktemp("formats")))
    return FormatChecker(settings.datasets.formats, settings.datasets.limits.max_quoted_chars)


def check(checker: FormatChecker, record: dict[str, Any]) -> tuple[Example | None, list[str]]:
    fmt = detect(record)
    assert fmt is not None
    example, problems = checker.check(fmt, record)
    return example, [code for code, _, _ in problems]


def chat(*turns: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (chat(("user", "hi"), ("assistant", "hello")), Format.CHAT),
        ({"conversations": [], "text": "x"}, Format.SHAREGPT),
        ({"instruction": "a", "input": "", "output": "b"}, Format.ALPACA),
        ({"prompt": "a", "completion": "b"}, Format.PROMPT_COMPLETION),
        ({"prompt": "a", "chosen": "b", "rejected": "c"}, Format.PREFERENCE),
        ({"chosen": "b", "rejected": "c"}, Format.PREFERENCE),
        ({"prompt": "a", "completion": "b", "label": True}, Format.UNPAIRED_PREFERENCE),
        ({"text": "plain", "label": 3}, Format.TEXT),
        ({"question": "a", "answer": "b"}, None),
    ],
)
def test_format_follows_the_fields(record: dict[str, Any], expected: Format | None) -> None:
    assert detect(record) is expected


def test_well_formed_chat_becomes_turns(checker: FormatChecker) -> None:
    example, codes = check(
        checker, chat(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"))
    )
    assert codes == []
    assert example is not None and example.has_system and example.conversational
    assert example.turns == [
        (Role.SYSTEM, "Be brief."),
        (Role.USER, "Hi"),
        (Role.ASSISTANT, "Hello!"),
    ]


def test_tool_calls_and_text_parts_are_content(checker: FormatChecker) -> None:
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "w", "arguments": '{"city": "Oslo"}'}}],
            },
            {"role": "tool", "content": "rain"},
            {"role": "assistant", "content": "It rains."},
        ]
    }
    example, codes = check(checker, record)
    assert codes == [] and example is not None
    assert example.turns[0] == (Role.USER, "Weather in Oslo?")
    assert '"name":"w"' in example.turns[1][1]
    assert [role for role, _ in example.turns] == [
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.ASSISTANT,
    ]


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"messages": "hi"}, ErrorCode.WRONG_TYPE),
        ({"messages": []}, ErrorCode.EMPTY_CONTENT),
        ({"messages": ["hi", {"role": "assistant", "content": "x"}]}, ErrorCode.WRONG_TYPE),
        (
            {"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]},
            ErrorCode.MISSING_FIELD,
        ),
        (chat(("user", "hi"), ("assistant", "")), ErrorCode.EMPTY_CONTENT),
        (chat(("user", "\n\t "), ("assistant", "x")), ErrorCode.EMPTY_CONTENT),
        (chat(("user", 42), ("assistant", "x")), ErrorCode.WRONG_TYPE),
        (chat(("bot", "hi"), ("assistant", "x")), ErrorCode.UNKNOWN_ROLE),
        (
            chat(
                ("user", "hi"),
            ),
            ErrorCode.NO_ASSISTANT_TURN,
        ),
        (chat(("assistant", "hi"), ("user", "x")), ErrorCode.ROLE_ORDER),
        (chat(("user", "a"), ("system", "b"), ("assistant", "c")), ErrorCode.ROLE_ORDER),
        (chat(("user", "a"), ("tool", "b"), ("assistant", "c")), ErrorCode.ROLE_ORDER),
        (
            {"conversations": [{"from": "human", "value": "a"}, {"from": "bot", "value": "b"}]},
            ErrorCode.UNKNOWN_ROLE,
        ),
        ({"instruction": "", "output": "b"}, ErrorCode.EMPTY_CONTENT),
        ({"instruction": "a"}, ErrorCode.MISSING_FIELD),
        ({"instruction": "a", "output": "b", "history": [["q"]]}, ErrorCode.WRONG_TYPE),
        ({"prompt": "a", "completion": None}, ErrorCode.EMPTY_CONTENT),
        ({"prompt": [{"role": "user", "content": "a"}], "completion": "b"}, ErrorCode.WRONG_TYPE),
        ({"prompt": "a", "completion": "b", "label": "yes"}, ErrorCode.WRONG_TYPE),
        (
            {"prompt": "q", "chosen": "Same  answer.", "rejected": " Same answer. "},
            ErrorCode.IDENTICAL_PAIR,
        ),
        (
            {
                "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "rejected": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                ],
            },
            ErrorCode.IDENTICAL_PAIR,
        ),
        (
            {"chosen": "a", "rejected": [{"role": "assistant", "content": "b"}]},
            ErrorCode.WRONG_TYPE,
        ),
        ({"text": "   "}, ErrorCode.EMPTY_CONTENT),
    ],
)
def test_each_problem_has_its_code(
    checker: FormatChecker, record: dict[str, Any], code: ErrorCode
) -> None:
    example, codes = check(checker, record)
    assert example is None
    assert code in codes


@pytest.mark.parametrize(
    ("record", "length"),
    [
        (chat(("u" * 2_000_000, "hi"), ("assistant", "x")), "2,000,000 characters"),
        ({"prompt": "a", "completion": "b", "label": ["yes"] * 500_000}, "3,000,001 characters"),
    ],
)
def test_a_value_quoted_in_a_problem_is_cut(
    checker: FormatChecker, record: dict[str, Any], length: str
) -> None:
    fmt = detect(record)
    assert fmt is not None
    (problem,) = checker.check(fmt, record)[1]
    assert problem[2].count(length) == 1 and len(problem[2]) < 400


def test_a_bad_turn_does_not_also_break_the_order_of_the_next(checker: FormatChecker) -> None:
    _, codes = check(checker, chat(("customer", "hi"), ("assistant", "hello")))
    assert codes == [ErrorCode.UNKNOWN_ROLE]


def test_sharegpt_maps_tags_and_takes_a_system_column(checker: FormatChecker) -> None:
    record = {
        "system": "Be kind.",
        "conversations": [
            {"from": "human", "value": "Weather?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {}}'},
            {"from": "observation", "value": "sunny"},
            {"from": "gpt", "value": "Sunny."},
        ],
    }
    example, codes = check(checker, record)
    assert codes == [] and example is not None and example.has_system
    roles = [role for role, _ in example.turns]
    assert roles == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]


def test_preference_pairs_become_two_sequences(checker: FormatChecker) -> None:
    example, codes = check(checker, {"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."})
    assert codes == [] and example is not None
    assert example.sequences() == [
        [(Role.USER, "Q?"), (Role.ASSISTANT, "Good.")],
        [(Role.USER, "Q?"), (Role.ASSISTANT, "Bad.")],
    ]
    conversational = {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "Good."}],
        "rejected": [{"role": "assistant", "content": "Bad."}],
    }
    example, codes = check(checker, conversational)
    assert codes == [] and example is not None and example.rejected is not None
    assert example.rejected[-1] == (Role.ASSISTANT, "Bad.")


def test_alpaca_becomes_a_conversation(checker: FormatChecker) -> None:
    record = {
        "system": "Be exact.",
        "instruction": "Double it.",
        "input": "21",
        "output": "42",
        "history": [["Add one to 1.", "2"]],
    }
    example, codes = check(checker, record)
    assert codes == [] and example is not None
    assert example.turns == [
        (Role.SYSTEM, "Be exact."),
        (Role.USER, "Add one to 1."),
        (Role.ASSISTANT, "2"),
        (Role.USER, "Double it.\n\n21"),
        (Role.ASSISTANT, "42"),
    ]


def test_the_fast_order_check_agrees_with_the_rule_for_every_short_conversation() -> None:
    """WELL_ORDERED (the hot path) and _order_problem (the messages) must never disagree."""
    for length in range(8):
        for tags in itertools.product(ROLE_OF_TAG, repeat=length):
            previous, allowed = None, True
            for tag in tags:
                role = ROLE_OF_TAG[tag]
                allowed = allowed and _order_problem(previous, role) is None
                previous = role
            assert (WELL_ORDERED.fullmatch("".join(tags)) is not None) is allowed, tags


@pytest.mark.parametrize(
    "turns",
    [
        [("user", "U"), ("assistant", "A")],
        [("system", "S"), ("user", "U"), ("assistant", "A"), ("user", "U2"), ("assistant", "A2")],
        [("user", "U"), ("assistant", "call"), ("tool", "T"), ("tool", "T2"), ("assistant", "A")],
        [("developer", "D"), ("user", "U"), ("assistant", "A"), ("function", "F")],
    ],
)
def test_fast_and_detailed_paths_give_the_same_turns(
    tmp_path: Path, turns: list[tuple[str, str]]
) -> None:
    """What the fast path accepts, the detailed path (read) accepts with the same turns."""
    config = load_settings(env=isolated_env(tmp_path)).datasets
    quoted = config.limits.max_quoted_chars
    reader = MessageReader(config.formats, quoted, ContentReader(config.formats, quoted, False))
    record = chat(*turns)
    fast = reader.plain_turns(record["messages"], reader.chat)
    conversation, reading = Conversation(), Reading()
    reader.read(record["messages"], "messages", conversation, reader.chat, reading)
    assert reading.problems == []
    assert fast == conversation.turns
