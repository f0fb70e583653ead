"""Every layout the validator reads is written into the package in TRL's own layout (TRL
dataset_formats.md): SFT layouts as `messages` (tool calls, tool results and reasoning kept, and
the record's `tools`), preference layouts as prompt/chosen/rejected, unpaired ones as
prompt/completion/label. Each file below is written in its project's documented shape,
validated, packaged, and the package's records compared with what TRL documents for the same
data."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings, load_settings
from tests.support import isolated_env
from tests.test_package_builder import build, jsonl, make_inputs
from tools.dataset_validator.kinds import Conversion

RECORDS = 12
Pair = tuple[dict[str, Any], dict[str, Any]]
"""(a record as the file holds it, the record the package must hold for it)."""

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def call(city: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "weather", "arguments": {"city": city}}}


def openai_tool_chat(i: int) -> Pair:
    """OpenAI chat fine-tuning with tools: arguments as JSON text, content null."""
    city = f"City {i}"
    record = {
        "messages": [
            {"role": "user", "content": f"Weather in {city}?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": "weather", "arguments": json.dumps({"city": city})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": f"call_{i}", "content": f"{i} degrees"},
            {"role": "assistant", "content": f"It is {i} degrees in {city}."},
        ],
        "tools": [WEATHER_TOOL],
    }
    trl = {
        "messages": [
            {"role": "user", "content": f"Weather in {city}?"},
            {"role": "assistant", "content": "", "tool_calls": [{**call(city), "id": f"call_{i}"}]},
            {"role": "tool", "content": f"{i} degrees", "tool_call_id": f"call_{i}"},
            {"role": "assistant", "content": f"It is {i} degrees in {city}."},
        ],
        "tools": [WEATHER_TOOL],
    }
    return record, trl


def sharegpt_tools(i: int) -> Pair:
    """LLaMA-Factory sharegpt with function_call / observation turns and tools as JSON text."""
    city = f"Town {i}"
    record = {
        "conversations": [
            {"from": "human", "value": f"Weather in {city}?"},
            {
                "from": "function_call",
                "value": json.dumps({"name": "weather", "arguments": {"city": city}}),
            },
            {"from": "observation", "value": f"{i} degrees"},
            {"from": "gpt", "value": f"{i} degrees."},
        ],
        "tools": json.dumps([WEATHER_TOOL["function"]]),
    }
    trl = {
        "messages": [
            {"role": "user", "content": f"Weather in {city}?"},
            {"role": "assistant", "content": "", "tool_calls": [call(city)]},
            {"role": "tool", "content": f"{i} degrees"},
            {"role": "assistant", "content": f"{i} degrees."},
        ],
        "tools": [WEATHER_TOOL],
    }
    return record, trl


def alpaca_history(i: int) -> Pair:
    """Alpaca with system and history (LLaMA-Factory data/README.md)."""
    record = {
        "instruction": f"And {i} more?",
        "input": "",
        "output": f"{i + 2}.",
        "system": "Count.",
        "history": [["One and one?", "2."]],
    }
    trl = {
        "messages": [
            {"role": "system", "content": "Count."},
            {"role": "user", "content": "One and one?"},
            {"role": "assistant", "content": "2."},
            {"role": "user", "content": f"And {i} more?"},
            {"role": "assistant", "content": f"{i + 2}."},
        ]
    }
    return record, trl


def typed_parts(i: int) -> Pair:
    """LLaMA-Factory v1 messages: typed parts with reasoning and a tool call."""
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "value": f"Weather in Place {i}?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "value": "Ask the tool."},
                    {
                        "type": "tool_call",
                        "value": json.dumps(
                            {"name": "weather", "arguments": {"city": f"Place {i}"}}
                        ),
                    },
                ],
            },
            {"role": "tool", "content": [{"type": "text", "value": "sunny"}]},
            {"role": "assistant", "content": [{"type": "text", "value": f"Sunny in Place {i}."}]},
        ]
    }
    trl = {
        "messages": [
            {"role": "user", "content": f"Weather in Place {i}?"},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "Ask the tool.",
                "tool_calls": [call(f"Place {i}")],
            },
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": f"Sunny in Place {i}."},
        ]
    }
    return record, trl


def sharegpt_ranking(i: int) -> Pair:
    """LLaMA-Factory's sharegpt preference layout."""
    record = {
        "conversations": [{"from": "human", "value": f"What is {i} + {i}?"}],
        "chosen": {"from": "gpt", "value": f"{2 * i}."},
        "rejected": {"from": "gpt", "value": f"{2 * i + 1}."},
        "system": "Be exact.",
    }
    trl = {
        "prompt": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": f"What is {i} + {i}?"},
        ],
        "chosen": [{"role": "assistant", "content": f"{2 * i}."}],
        "rejected": [{"role": "assistant", "content": f"{2 * i + 1}."}],
    }
    return record, trl


def openai_preference(i: int) -> Pair:
    """OpenAI preference fine-tuning, tools in the input."""
    record = {
        "input": {
            "messages": [{"role": "user", "content": f"Is {i} even?"}],
            "tools": [WEATHER_TOOL],
            "parallel_tool_calls": True,
        },
        "preferred_output": [{"role": "assistant", "content": "Yes." if i % 2 == 0 else "No."}],
        "non_preferred_output": [{"role": "assistant", "content": f"Maybe, {i} is a number."}],
    }
    trl = {
        "prompt": [{"role": "user", "content": f"Is {i} even?"}],
        "chosen": [{"role": "assistant", "content": "Yes." if i % 2 == 0 else "No."}],
        "rejected": [{"role": "assistant", "content": f"Maybe, {i} is a number."}],
        "tools": [WEATHER_TOOL],
    }
    return record, trl


def alpaca_ranking(i: int) -> Pair:
    """LLaMA-Factory's alpaca preference layout: instruction and input are the prompt."""
    record = {"instruction": "Double it.", "input": str(i), "chosen": str(2 * i), "rejected": "?"}
    trl = {
        "prompt": [{"role": "user", "content": f"Double it.\n\n{i}"}],
        "chosen": [{"role": "assistant", "content": str(2 * i)}],
        "rejected": [{"role": "assistant", "content": "?"}],
    }
    return record, trl


def v1_pairs(i: int) -> Pair:
    """LLaMA-Factory v1's DPO sample: two whole conversations (an implicit prompt)."""

    def side(answer: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": [{"type": "text", "value": f"Spell {i}."}]},
            {"role": "assistant", "content": [{"type": "text", "value": answer}]},
        ]

    record = {"chosen_messages": side(f"{i} spelled"), "rejected_messages": side("no")}
    trl = {
        "prompt": [{"role": "user", "content": f"Spell {i}."}],
        "chosen": [{"role": "assistant", "content": f"{i} spelled"}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }
    return record, trl


def ultrafeedback(i: int) -> Pair:
    """UltraFeedback's layout: a string prompt, whole conversations, the chosen as `messages`."""

    def side(answer: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": f"Name color {i}."},
            {"role": "assistant", "content": answer},
        ]

    record = {
        "prompt": f"Name color {i}.",
        "prompt_id": f"p{i}",
        "chosen": side(f"Color {i} is blue."),
        "rejected": side("Green."),
        "messages": side(f"Color {i} is blue."),
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }
    trl = {
        "prompt": [{"role": "user", "content": f"Name color {i}."}],
        "chosen": [{"role": "assistant", "content": f"Color {i} is blue."}],
        "rejected": [{"role": "assistant", "content": "Green."}],
    }
    return record, trl


def sharegpt_kto(i: int) -> Pair:
    """LLaMA-Factory's KTO layout: a sharegpt conversation judged by its boolean kto_tag."""
    good = i % 3 != 0
    answer = f"{i} is {'even' if i % 2 == 0 else 'odd'}." if good else "No idea."
    record = {
        "conversations": [
            {"from": "human", "value": f"Is {i} even?"},
            {"from": "gpt", "value": answer},
        ],
        "kto_tag": good,
    }
    trl = {
        "prompt": [{"role": "user", "content": f"Is {i} even?"}],
        "completion": [{"role": "assistant", "content": answer}],
        "label": good,
    }
    return record, trl


def chat_kto(i: int) -> Pair:
    """Messages and a boolean label: the label judges the final answer; the turns before it
    (a system turn and an earlier exchange) are the prompt."""
    good = i % 3 != 0
    answer = str(i + 1) if good else "Twelve."
    earlier = [
        {"role": "system", "content": "You count."},
        {"role": "user", "content": "What comes after 1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": f"What comes after {i}?"},
    ]
    record = {"messages": [*earlier, {"role": "assistant", "content": answer}], "label": good}
    trl = {
        "prompt": earlier,
        "completion": [{"role": "assistant", "content": answer}],
        "label": good,
    }
    return record, trl


def openai_preference_as_sft(i: int) -> Pair:
    """OpenAI preference data trained as supervised data (convert: "sft"): the preferred side,
    its prompt and its tools, as one conversation."""
    record, trl = openai_preference(i)
    return record, {"messages": [*trl["prompt"], *trl["chosen"]], "tools": trl["tools"]}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env=isolated_env(tmp_path))


@pytest.mark.parametrize(
    ("layout", "template", "convert"),
    [
        (openai_tool_chat, "lora", None),
        (sharegpt_tools, "lora", None),
        (alpaca_history, "lora", None),
        (typed_parts, "lora", None),
        (sharegpt_ranking, "dpo", None),
        (openai_preference, "dpo", None),
        (alpaca_ranking, "dpo", None),
        (v1_pairs, "dpo", None),
        (ultrafeedback, "dpo", None),
        (sharegpt_kto, "kto", None),
        (chat_kto, "kto", None),
        (openai_preference_as_sft, "lora", "sft"),
    ],
)
def test_each_layout_is_packaged_in_trl_s_layout(
    settings: Settings,
    tmp_path: Path,
    layout: Callable[[int], Pair],
    template: str,
    convert: Conversion | None,
) -> None:
    root = tmp_path / "data"
    root.mkdir()
    pairs = [layout(i) for i in range(RECORDS)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r, _ in pairs))
    inputs = make_inputs(settings, root, ["data.jsonl"], template=template, convert=convert)
    destination = tmp_path / "out" / "pkg"
    result = build(settings, root, inputs, destination)
    files = settings.package.files
    written = jsonl(destination / files.train_data)
    if (destination / files.validation_data).exists():
        written += jsonl(destination / files.validation_data)

    def canonical(record: dict[str, Any]) -> str:
        return json.dumps(record, sort_keys=True)

    assert sorted(map(canonical, written)) == sorted(canonical(trl) for _, trl in pairs)
    assert result.manifest["data"]["conversational"] is True


def test_a_package_says_which_media_was_dropped(settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    records = [
        {
            "conversations": [
                {"from": "human", "value": f"<image>Who is in picture {i}?"},
                {"from": "gpt", "value": f"Cat number {i}."},
            ],
            "images": [f"pictures/{i}.jpg"],
        }
        for i in range(RECORDS)
    ]
    (root / "mllm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    inputs = make_inputs(settings, root, ["mllm.jsonl"], drop_media=True)
    destination = tmp_path / "out" / "pkg"
    build(settings, root, inputs, destination)
    manifest = yaml.safe_load((destination / "package.yaml").read_text())
    assert manifest["datasets"][0]["media_dropped"] == {"records": RECORDS, "parts": {"image": 12}}
    readme = (destination / "README.md").read_text()
    assert "12 records held media, removed as asked (drop_media): images: 12" in readme
    files = settings.package.files
    written = jsonl(destination / files.train_data)
    assert all("<image>" not in m["content"] for r in written for m in r["messages"])
    assert written[0]["messages"][0]["content"].startswith("Who is in picture")
