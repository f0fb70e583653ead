"""The layouts datasets come in as their projects document them (TRL dataset_formats.md,
LLaMA-Factory data/README.md and its v1 Content types, OpenAI's chat, tool and preference
fine-tuning guides): each is recognised record by record, read into the common Example, and
each problem names the layout's own field."""

import json
from pathlib import Path
from typing import Any

import pytest

from server.settings import load_settings
from tests.support import isolated_env
from tests.test_datasets_validator import validate
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.fit import TemplateFit
from tools.dataset_validator.formats import Example, FormatChecker, detect
from tools.dataset_validator.kinds import ErrorCode, Format, Role, WarningCode

U, A, S, T = Role.USER, Role.ASSISTANT, Role.SYSTEM, Role.TOOL

# --- records in each project's documented shape -------------------------------------------------

TRL_TOOL_CHAT = {  # TRL dataset_formats.md "Tool Calling"; OpenAI ids and JSON-text arguments
    "messages": [
        {"role": "user", "content": "Turn on the living room lights."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "control_light",
                        "arguments": '{"room": "living room", "state": "on"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "name": "control_light",
            "content": "The lights in the living room are now on.",
        },
        {"role": "assistant", "content": "Done!"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "control_light",
                "description": "Controls the lights in a room.",
                "parameters": {
                    "type": "object",
                    "properties": {"room": {"type": "string"}, "state": {"type": "string"}},
                    "required": ["room", "state"],
                },
            },
        }
    ],
}
LF_RANKING = {  # LLaMA-Factory data/README.md, sharegpt "Preference Dataset"
    "conversations": [
        {"from": "human", "value": "What is 2+2?"},
        {"from": "gpt", "value": "4."},
        {"from": "human", "value": "And times three?"},
    ],
    "chosen": {"from": "gpt", "value": "12."},
    "rejected": {"from": "gpt", "value": "7."},
}
LF_KTO = {  # LLaMA-Factory data/README.md, sharegpt "KTO Dataset"
    "conversations": [
        {"from": "human", "value": "Name a prime."},
        {"from": "gpt", "value": "9."},
    ],
    "kto_tag": False,
}
LF_TOOLS = {  # LLaMA-Factory data/README.md, sharegpt with function_call / observation turns
    "conversations": [
        {"from": "human", "value": "How warm is it in Oslo?"},
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Oslo"}}'},
        {"from": "observation", "value": '{"celsius": 4}'},
        {"from": "gpt", "value": "It is 4 degrees."},
    ],
    "system": "You answer with the tools given.",
    "tools": '[{"name": "weather", "description": "Weather now", "parameters": '
    '{"type": "object", "properties": {"city": {"type": "string"}}}}]',
}
OPENAI_PREFERENCE = {  # OpenAI preference fine-tuning: input, preferred and non-preferred output
    "input": {
        "messages": [{"role": "user", "content": "Hello, how cold is San Francisco today?"}],
        "tools": [],
        "parallel_tool_calls": True,
    },
    "preferred_output": [{"role": "assistant", "content": "It is 14 degrees Celsius today."}],
    "non_preferred_output": [{"role": "assistant", "content": "It is cold."}],
}
LF_V1 = {  # LLaMA-Factory v1 messages: content as typed parts (utils/types.py Content)
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "value": "Weather in "},
                {"type": "text", "value": "Rome?"},
            ],
            "loss_weight": 0.0,
        },
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "value": "I should call the tool."},
                {
                    "type": "tool_call",
                    "value": '{"name": "weather", "arguments": {"city": "Rome"}}',
                },
            ],
            "loss_weight": 1.0,
        },
        {"role": "tool", "content": [{"type": "text", "value": "sunny"}], "loss_weight": 0.0},
        {"role": "assistant", "content": [{"type": "text", "value": "Sunny."}]},
    ]
}


ULTRAFEEDBACK = {  # TRL data_utils.maybe_extract_prompt: a string prompt beside whole conversations
    "prompt": "What color is the sky?",
    "chosen": [
        {"role": "user", "content": "What color is the sky?"},
        {"role": "assistant", "content": "It is blue."},
    ],
    "rejected": [
        {"role": "user", "content": "What color is the sky?"},
        {"role": "assistant", "content": "It is green."},
    ],
    "messages": [
        {"role": "user", "content": "What color is the sky?"},
        {"role": "assistant", "content": "It is blue."},
    ],
    "score_chosen": 8.0,
    "score_rejected": 3.0,
}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("layouts"))).datasets


@pytest.fixture(scope="module")
def checker(config: DatasetsConfig) -> FormatChecker:
    return FormatChecker(config.formats, config.limits.max_quoted_chars)


def read(checker: FormatChecker, record: dict[str, Any]) -> Example:
    fmt = detect(record)
    assert fmt is not None
    example, problems = checker.check(fmt, record)
    assert example is not None, problems
    return example


def problems(checker: FormatChecker, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(code, field) of each problem."""
    fmt = detect(record)
    assert fmt is not None
    example, found = checker.check(fmt, record)
    assert example is None
    return [(str(code), path) for code, path, _ in found]


def with_(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(record)), **changes}


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        (TRL_TOOL_CHAT, Format.CHAT),
        (LF_RANKING, Format.SHAREGPT_PREFERENCE),
        (
            {"messages": LF_V1["messages"][:2], "chosen": {}, "rejected": {}},
            Format.SHAREGPT_PREFERENCE,
        ),
        (LF_KTO, Format.SHAREGPT_UNPAIRED),
        ({"messages": [], "label": True}, Format.CHAT_UNPAIRED),
        ({"messages": [], "kto_tag": "yes"}, Format.CHAT_UNPAIRED),
        (LF_TOOLS, Format.SHAREGPT),
        (OPENAI_PREFERENCE, Format.OPENAI_PREFERENCE),
        ({"chosen_messages": [], "rejected_messages": []}, Format.PREFERENCE),
        ({"instruction": "q", "chosen": "a", "rejected": "b"}, Format.PREFERENCE),
        ({"instruction": "q", "output": "a", "kto_tag": True}, Format.UNPAIRED_PREFERENCE),
        ({"prompt": "q", "completion": "a", "kto_tag": True}, Format.UNPAIRED_PREFERENCE),
        (LF_V1, Format.CHAT),
        (ULTRAFEEDBACK, Format.PREFERENCE),
        ({"conversations": [], "chosen": [], "rejected": []}, Format.SHAREGPT_PREFERENCE),
    ],
)
def test_each_layout_is_recognised_by_its_fields(record: dict[str, Any], fmt: Format) -> None:
    assert detect(record) is fmt


# --- preference ---------------------------------------------------------------------------------


def test_llama_factory_ranking_records_are_preference_pairs(checker: FormatChecker) -> None:
    example = read(checker, LF_RANKING)
    prompt = [(U, "What is 2+2?"), (A, "4."), (U, "And times three?")]
    assert example.format is Format.SHAREGPT_PREFERENCE and example.prompt_turns == 3
    assert example.turns == [*prompt, (A, "12.")]
    assert example.rejected == [*prompt, (A, "7.")]


def test_llama_factory_ranking_with_openai_tags(checker: FormatChecker) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": "2+2?"},
        ],
        "chosen": {"role": "assistant", "content": "4"},
        "rejected": {"role": "assistant", "content": "5"},
    }
    example = read(checker, record)
    assert example.has_system and example.prompt_turns == 2
    assert example.rejected == [(S, "Be exact."), (U, "2+2?"), (A, "5")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"chosen": [{"from": "gpt", "value": "12."}]}, ("wrong_type", "chosen")),
        ({"chosen": {"from": "gpt"}}, ("missing_field", "chosen.value")),
        ({"rejected": {"from": "gpt", "value": " "}}, ("empty_content", "rejected.value")),
        ({"rejected": {"from": "bot", "value": "7."}}, ("unknown_role", "rejected.from")),
        ({"rejected": {"from": "gpt", "value": "12."}}, ("identical_pair", "rejected")),
    ],
)
def test_ranking_problems_name_the_ranking_fields(
    checker: FormatChecker, change: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert expected in problems(checker, with_(LF_RANKING, **change))


def test_a_ranking_prompt_must_end_with_the_user(checker: FormatChecker) -> None:
    conversations = [*LF_RANKING["conversations"][:2]]
    found = problems(checker, with_(LF_RANKING, conversations=conversations))
    assert ("role_order", "chosen") in found
    conversations = [{"from": "human", "value": "Hi"}, {"from": "robot", "value": "?"}]
    found = problems(checker, with_(LF_RANKING, conversations=conversations))
    assert ("unknown_role", "conversations[1].from") in found


def test_openai_preference_records_are_pairs_after_the_input(checker: FormatChecker) -> None:
    example = read(checker, OPENAI_PREFERENCE)
    assert example.format is Format.OPENAI_PREFERENCE and example.prompt_turns == 1
    assert example.turns[-1] == (A, "It is 14 degrees Celsius today.")
    assert example.rejected == [(U, "Hello, how cold is San Francisco today?"), (A, "It is cold.")]
    assert example.tools is None  # an empty tools list declares none


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"preferred_output": [{"role": "assistant"}]},
            ("missing_field", "preferred_output[0].content"),
        ),
        (
            {
                "input": {
                    "messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "x"}]
                }
            },
            ("unknown_role", "input.messages[1].role"),
        ),
        ({"input": {"prompt": "q"}}, ("missing_field", "input.messages")),
        ({"non_preferred_output": "It is cold."}, ("wrong_type", "non_preferred_output")),
        (
            {
                "input": {
                    "messages": [{"role": "user", "content": "q"}],
                    "tools": [{"type": "function"}],
                }
            },
            ("invalid_tool", "input.tools[0]"),
        ),
    ],
)
def test_openai_preference_problems_name_its_fields(
    checker: FormatChecker, change: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert expected in problems(checker, with_(OPENAI_PREFERENCE, **change))


def test_openai_preference_without_outputs_says_what_it_needs(checker: FormatChecker) -> None:
    record = {"input": OPENAI_PREFERENCE["input"], "preferred_output": []}
    assert ("missing_field", "non_preferred_output") in problems(checker, record)


def test_a_string_prompt_beside_conversations_is_implicit_as_trl_takes_it(
    checker: FormatChecker,
) -> None:
    example = read(checker, ULTRAFEEDBACK)
    assert example.format is Format.PREFERENCE and example.prompt_turns is None
    assert example.turns == [(U, "What color is the sky?"), (A, "It is blue.")]
    assert example.rejected == [(U, "What color is the sky?"), (A, "It is green.")]


def test_llama_factory_v1_pairs_and_alpaca_ranking_are_preference(checker: FormatChecker) -> None:
    v1 = {
        "chosen_messages": [
            {"role": "user", "content": [{"type": "text", "value": "2+2?"}]},
            {"role": "assistant", "content": [{"type": "text", "value": "4"}]},
        ],
        "rejected_messages": [
            {"role": "user", "content": [{"type": "text", "value": "2+2?"}]},
            {"role": "assistant", "content": [{"type": "text", "value": "5"}]},
        ],
    }
    example = read(checker, v1)
    assert example.rejected == [(U, "2+2?"), (A, "5")] and example.prompt_turns is None
    bad = with_(
        v1, rejected_messages=[{"role": "user", "content": [{"type": "txt", "value": "x"}]}]
    )
    assert ("wrong_type", "rejected_messages[0].content[0].type") in problems(checker, bad)
    alpaca = {"instruction": "Double it.", "input": "21", "chosen": "42", "rejected": "41"}
    example = read(checker, alpaca)  # LLaMA-Factory's alpaca ranking: the instruction is the prompt
    assert example.turns == [(U, "Double it.\n\n21"), (A, "42")] and example.prompt_turns == 1
    assert example.conversational


# --- unpaired preference (KTO) ------------------------------------------------------------------


def test_kto_layouts_carry_their_label_and_the_judged_answer(checker: FormatChecker) -> None:
    example = read(checker, LF_KTO)
    assert example.format is Format.SHAREGPT_UNPAIRED and example.label is False
    assert example.turns == [(U, "Name a prime."), (A, "9.")] and example.prompt_turns == 1
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}
    example = read(checker, {**chat, "label": True})
    assert example.format is Format.CHAT_UNPAIRED and example.label is True
    assert example.prompt_turns == 1 and example.conversational
    alpaca = read(checker, {"instruction": "Name a prime.", "output": "7", "kto_tag": True})
    assert alpaca.format is Format.UNPAIRED_PREFERENCE and alpaca.label is True
    assert alpaca.turns == [(U, "Name a prime."), (A, "7")] and alpaca.prompt_turns == 1


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({**LF_KTO, "kto_tag": "false"}, ("wrong_type", "kto_tag")),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Yo"},
                ],
                "label": 1,
            },
            ("wrong_type", "label"),
        ),
        (
            {"messages": [{"role": "user", "content": "Hi"}], "label": True},
            ("no_assistant_turn", "messages"),
        ),
    ],
)
def test_a_label_that_is_not_a_boolean_is_an_error_not_chat(
    checker: FormatChecker, record: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert expected in problems(checker, record)


# --- tools and typed content ----------------------------------------------------------------------


def test_openai_tool_calls_become_trl_tool_calls(checker: FormatChecker) -> None:
    example = read(checker, TRL_TOOL_CHAT)
    assert [role for role, _ in example.turns] == [U, A, T, A]
    assert example.details is not None and set(example.details) == {1, 2}
    call = example.details[1]
    assert call.content == ""
    assert call.fields["tool_calls"] == [
        {
            "type": "function",
            "function": {
                "name": "control_light",
                "arguments": {"room": "living room", "state": "on"},
            },
            "id": "call_1",
        }
    ]
    assert '"control_light"' in example.turns[1][1]  # the call counts as the turn's text
    assert example.details[2].fields == {"tool_call_id": "call_1", "name": "control_light"}
    assert example.tools == TRL_TOOL_CHAT["tools"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "tool_calls.0.function.arguments",
            "{room: 1}",
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            "tool_calls.0.function.arguments",
            "[1, 2]",
            "messages[1].tool_calls[0].function.arguments",
        ),
        ("tool_calls.0.function.name", "", "messages[1].tool_calls[0].function.name"),
        ("tool_calls.0.type", "retrieval", "messages[1].tool_calls[0].type"),
        ("tool_calls", {"name": "x"}, "messages[1].tool_calls"),
    ],
)
def test_a_broken_tool_call_is_named_where_it_is(
    checker: FormatChecker, path: str, value: Any, expected: str
) -> None:
    record = with_(TRL_TOOL_CHAT)
    target: Any = record["messages"][1]
    *parents, last = path.split(".")
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    assert ("invalid_tool", expected) in problems(checker, record)


def test_tools_and_calls_where_they_cannot_be(checker: FormatChecker) -> None:
    record = with_(TRL_TOOL_CHAT, tools=[{"description": "no name"}])
    assert ("invalid_tool", "tools[0]") in problems(checker, record)
    record = with_(TRL_TOOL_CHAT, tools="[{]")
    assert ("invalid_tool", "tools") in problems(checker, record)
    record = with_(TRL_TOOL_CHAT)
    record["messages"][0]["tool_calls"] = record["messages"][1]["tool_calls"]
    assert ("invalid_tool", "messages[0].tool_calls") in problems(checker, record)


def test_sharegpt_function_calls_and_observations_are_tool_turns(checker: FormatChecker) -> None:
    example = read(checker, LF_TOOLS)
    assert [role for role, _ in example.turns] == [S, U, A, T, A]
    assert example.details is not None and set(example.details) == {2}
    assert example.details[2].fields["tool_calls"] == [
        {"type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}
    ]
    assert example.tools == [  # glaive's bare schemas, as function tools
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    broken = with_(LF_TOOLS)
    broken["conversations"][1]["value"] = "weather(city='Oslo')"
    assert ("invalid_tool", "conversations[1].value") in problems(checker, broken)


def test_typed_parts_join_and_reasoning_is_kept_for_the_template(checker: FormatChecker) -> None:
    example = read(checker, LF_V1)
    assert example.turns[0] == (U, "Weather in Rome?")
    assert example.details is not None
    fields = example.details[1].fields
    assert fields["reasoning_content"] == "I should call the tool."
    assert fields["tool_calls"][0]["function"] == {"name": "weather", "arguments": {"city": "Rome"}}
    assert example.turns[1][1].startswith("I should call the tool.\n")  # counted and compared
    openai_parts = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
            },
            {"role": "assistant", "content": "Hello", "reasoning_content": "Greet back."},
        ]
    }
    example = read(checker, openai_parts)
    assert example.turns == [(U, "Hi there"), (A, "Greet back.\nHello")]
    assert example.details is not None and example.details[1].content == "Hello"


# --- media ----------------------------------------------------------------------------------------

OPENAI_VISION = {  # OpenAI vision fine-tuning: image_url parts in a user message
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
        {"role": "assistant", "content": "A cat."},
    ]
}
LF_IMAGES = {  # LLaMA-Factory data/README.md "Multimodal Image Dataset"
    "conversations": [
        {"from": "human", "value": "<image>Who is in the picture?"},
        {"from": "gpt", "value": "A cat."},
    ],
    "images": ["mllm_demo_data/1.jpg"],
}


@pytest.mark.parametrize(
    ("record", "kinds", "where"),
    [
        (OPENAI_VISION, "images", "messages[0].content[1]"),
        (LF_IMAGES, "images", "images"),
        (
            with_(LF_IMAGES, images=None, videos=["a.mp4"], audios="a.wav"),
            "audio and videos",
            "videos",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "input_audio", "input_audio": {"data": "..."}}],
                    },
                    {"role": "assistant", "content": "Hello."},
                ]
            },
            "audio",
            "messages[0].content[0]",
        ),
    ],
)
def test_media_is_named_as_an_error_by_default(
    checker: FormatChecker, record: dict[str, Any], kinds: str, where: str
) -> None:
    fmt = detect(record)
    assert fmt is not None
    _, found = checker.check(fmt, record)
    ((_, path, message),) = [p for p in found if p[0] is ErrorCode.HAS_MEDIA]
    assert path == where
    assert f"this data has {kinds}" in message and "text-only" in message


def test_drop_media_takes_parts_fields_and_tags_out(config: DatasetsConfig) -> None:
    dropping = FormatChecker(config.formats, config.limits.max_quoted_chars, drop_media=True)
    example = read(dropping, OPENAI_VISION)
    assert example.turns == [(U, "What is in this picture?"), (A, "A cat.")]
    assert example.media == {"image": 1}
    example = read(dropping, LF_IMAGES)
    assert example.turns == [(U, "Who is in the picture?"), (A, "A cat.")]
    assert example.media == {"image": 1}
    alpaca = {"instruction": "<image><image>Compare.", "output": "Same.", "images": ["a", "b"]}
    example = read(dropping, alpaca)
    assert example.turns[0] == (U, "Compare.") and example.media == {"image": 2}
    # a literal tag in a record without the media column is text, and stays
    text = {
        "conversations": [
            {"from": "human", "value": "What does <image> do in HTML?"},
            {"from": "gpt", "value": "Nothing."},
        ]
    }
    assert read(dropping, text).turns[0] == (U, "What does <image> do in HTML?")
    assert read(dropping, with_(LF_IMAGES, images=[])).media is None


def test_a_turn_left_without_text_is_an_error(config: DatasetsConfig) -> None:
    dropping = FormatChecker(config.formats, config.limits.max_quoted_chars, drop_media=True)
    only_image = with_(OPENAI_VISION)
    del only_image["messages"][0]["content"][0]
    fmt = detect(only_image)
    assert fmt is not None
    _, found = dropping.check(fmt, only_image)
    ((code, path, message),) = found
    assert (code, path) == (ErrorCode.EMPTY_CONTENT, "messages[0].content")
    assert "once its media is dropped" in message
    tag_only = {
        "messages": [
            {"role": "user", "content": "<image>"},
            {"role": "assistant", "content": "A cat."},
        ],
        "images": ["cat.png"],
    }
    (problem,) = dropping.check(Format.CHAT, tag_only)[1]
    assert problem[:2] == (ErrorCode.EMPTY_CONTENT, "messages[0].content")
    assert "once its media is dropped" in problem[2]


# --- whole files: counts, the report, the split ---------------------------------------------------


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def ranking_records(count: int) -> list[dict[str, Any]]:
    """LLaMA-Factory ranking records of one to three exchanges before the judged question."""
    records = []
    for i in range(count):
        turns = []
        for j in range(i % 3):
            turns += [
                {"from": "human", "value": f"Q{i}.{j}?"},
                {"from": "gpt", "value": f"A{i}.{j}."},
            ]
        turns.append({"from": "human", "value": f"Question {i}?"})
        records.append(
            {
                "conversations": turns,
                "chosen": {"from": "gpt", "value": f"Good answer {i}."},
                "rejected": {"from": "gpt", "value": f"Bad answer {i}."},
            }
        )
    return records


def test_a_ranking_file_is_all_pairs_counted_exactly(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    write_jsonl(tmp_path / "dpo_en_demo.jsonl", ranking_records(300))
    dpo = TemplateFit(template="dpo", method="dpo", templates_by_method={"dpo": ["dpo"]})
    report = validate(config, ["dpo_en_demo.jsonl"], roots=[tmp_path], template=dpo)
    (dataset,) = report.datasets
    assert report.valid, dataset.errors
    assert dataset.format is Format.SHAREGPT_PREFERENCE
    assert dataset.format_counts == {"sharegpt_preference": 300}
    assert (dataset.records, dataset.valid_records, dataset.duplicates.within) == (300, 300, 0)
    assert report.preview[0].rejected is not None
    assert report.preview[0].rejected[-1].text == "Bad answer 0."


def test_media_makes_the_step_invalid_until_it_is_dropped(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    records = [
        with_(
            LF_IMAGES,
            conversations=[
                {"from": "human", "value": f"<image>Picture {i}: who is in it?"},
                {"from": "gpt", "value": f"Cat {i}."},
            ],
        )
        for i in range(12)
    ]
    write_jsonl(tmp_path / "mllm_demo.jsonl", records)
    refused = validate(config, ["mllm_demo.jsonl"], roots=[tmp_path], validation_split=0)
    (dataset,) = refused.datasets
    assert not refused.valid and dataset.error_counts["has_media"] == 12
    assert dataset.media_dropped is None
    dropped = validate(
        config, ["mllm_demo.jsonl"], roots=[tmp_path], validation_split=0, drop_media=True
    )
    (dataset,) = dropped.datasets
    assert dropped.valid and dropped.drop_media
    assert dataset.media_dropped is not None
    assert (dataset.media_dropped.records, dataset.media_dropped.parts) == (12, {"image": 12})
    (warning,) = [w for w in dataset.warnings if w.code is WarningCode.MEDIA_DROPPED]
    assert warning.count == 12 and "images: 12" in warning.message
    assert dropped.preview[0].turns[0].text == "Picture 0: who is in it?"


def test_records_that_differ_only_in_their_tools_are_not_duplicates(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    base = with_(TRL_TOOL_CHAT)
    other_tools = with_(TRL_TOOL_CHAT, tools=[{"type": "function", "function": {"name": "dim"}}])
    other_arguments = with_(TRL_TOOL_CHAT)
    other_arguments["messages"][1]["tool_calls"][0]["function"]["arguments"] = '{"room": "hall"}'
    no_tools = {"messages": TRL_TOOL_CHAT["messages"]}
    records = [base, other_tools, other_arguments, no_tools] * 3
    write_jsonl(tmp_path / "tools.jsonl", records)
    (dataset,) = validate(config, ["tools.jsonl"], roots=[tmp_path]).datasets
    assert dataset.valid_records == 12 and dataset.duplicates.within == 8


def test_turns_marked_not_to_train_on_are_warned_about(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """OpenAI's `weight: 0` and LLaMA-Factory v1's `loss_weight: 0.0` on an assistant turn:
    TRL has no per-turn weight, so the package would learn the turn all the same."""
    records = []
    for i in range(12):
        weighted = {"role": "assistant", "content": f"Draft {i}.", "weight": 0}
        if i % 2:
            weighted = {
                "role": "assistant",
                "content": [{"type": "text", "value": f"Draft {i}."}],
                "loss_weight": 0.0,
            }
        records.append(
            {
                "messages": [
                    {"role": "user", "content": f"Write {i}."},
                    weighted,
                    {"role": "user", "content": "Better?"},
                    {"role": "assistant", "content": f"Final {i}.", "weight": 1},
                ]
            }
        )
    write_jsonl(tmp_path / "weights.jsonl", records)
    (dataset,) = validate(config, ["weights.jsonl"], roots=[tmp_path]).datasets
    assert dataset.valid
    (warning,) = [w for w in dataset.warnings if w.code is WarningCode.UNTRAINED_TURNS]
    assert warning.count == 12 and "weight or loss_weight 0" in warning.message
    assert "TRL trains on every assistant turn" in warning.fix
