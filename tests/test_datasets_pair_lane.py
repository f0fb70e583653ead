"""The pair lane (msgspec) gives every preference record the verdict, digest and length the
record path gives it: whole reports are compared with the lanes on and off, on TRL's standard
and conversational pairs, clean and broken in many small ways."""

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tests.test_datasets_chat_lane import (
    TEXTS,
    assert_same,
    both_ways,
    placeholders,
    small_batches,
)
from tests.test_datasets_tokens import word_tokenizer
from tests.test_datasets_validator import validate
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.formats import FormatChecker
from tools.dataset_validator.hygiene import RecordIndex
from tools.dataset_validator.kinds import Format
from tools.dataset_validator.lanes import Lanes
from tools.dataset_validator.pair_lane import PairLane
from tools.dataset_validator.readers import LineBatch
from tools.dataset_validator.tokens import EstimatedTokens, ModelTokens, TokenCounter


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return small_batches(tmp_path_factory.mktemp("config"))


ANSWERS = ["Blue.", "It is blue.", "Green!", "Hi {{ name }}, it is blue."]


def standard(rng: random.Random) -> dict[str, Any]:
    """TRL's standard pair (dataset_formats.md): strings, an explicit prompt."""
    chosen, rejected = rng.sample(ANSWERS, 2)
    return {
        "prompt": rng.choice(["What color is the sky?", "Sky?"]),
        "chosen": chosen,
        "rejected": rejected,
    }


def conversational(rng: random.Random) -> dict[str, Any]:
    """TRL's conversational pair: a prompt of messages, an answer of messages on each side."""
    prompt = [{"role": "user", "content": rng.choice(["What color is the sky?", "Sky?"])}]
    if rng.random() < 0.5:
        prompt.insert(0, {"role": "system", "content": "Be brief."})
    chosen, rejected = rng.sample(ANSWERS, 2)
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


@st.composite
def broken(draw: st.DrawFn, record: dict[str, Any]) -> dict[str, Any]:
    """A pair with one change that may or may not break a rule: a blank or repeated answer, an
    empty prompt, a role out of place, an extra member, a side that is not a list."""
    record = json.loads(json.dumps(record))
    key = draw(st.sampled_from(["prompt", "chosen", "rejected"]))
    change = draw(st.integers(0, 5))
    value = record[key]
    if change == 0:
        text = draw(TEXTS)
        if isinstance(value, list):
            value[-1]["content"] = text
        else:
            record[key] = text
    elif change == 1:  # the other side again, its spacing changed or not
        other = json.loads(json.dumps(record["rejected" if key == "chosen" else "chosen"]))
        gap = draw(st.sampled_from([" ", "  ", "\n"]))
        if isinstance(other, list):
            for message in other:
                message["content"] = message["content"].replace(" ", gap)
        record[key] = other.replace(" ", gap) if isinstance(other, str) else other
    elif change == 2:
        record[key] = [] if isinstance(value, list) else ""
    elif change == 3 and isinstance(value, list):
        value[-1]["role"] = draw(st.sampled_from(["user", "assistant", "system", "tool", "bot"]))
    elif change == 4:
        record["id"] = draw(st.integers(0, 9))
    else:
        record[key] = None
    return record


@st.composite
def lines(draw: st.DrawFn) -> str:
    rng = random.Random(draw(st.integers(0, 2**16)))
    make = draw(st.sampled_from([standard, conversational]))
    out = []
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.integers(0, 9))
        if kind <= 5:
            out.append(json.dumps(make(rng)))
        elif kind <= 8:
            out.append(json.dumps(draw(broken(make(rng)))))
        else:
            out.append(draw(st.sampled_from(["{bad json", "[1]", json.dumps(standard(rng))])))
    return "\n".join(out) + "\n"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=lines())
def test_the_pair_lane_and_the_record_path_write_the_same_report(
    config: DatasetsConfig, tmp_path: Path, text: str
) -> None:
    (tmp_path / "pairs.jsonl").write_text(text, encoding="utf-8")
    fast, slow = both_ways(config, ["pairs.jsonl"], tmp_path, max_seq_length=12)
    assert_same(fast, slow)


def say(role: str, text: str) -> dict[str, str]:
    return {"role": role, "content": text}


NEAR_MISSES = [
    {"prompt": "Sky?", "chosen": "It is blue.", "rejected": "It  is\nblue. "},  # identical
    {"prompt": "", "chosen": "Blue.", "rejected": "Green."},  # no prompt: the implicit form
    {"prompt": "  ", "chosen": "Blue.", "rejected": "Green."},  # a blank prompt is a turn
    {"prompt": "Sky?", "chosen": "\u3000", "rejected": "Green."},  # blank to Python
    {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green.", "id": 7},  # another member
    {
        "prompt": [say("user", "Sky?")],
        "chosen": [say("assistant", "It is blue.")],
        "rejected": [say("assistant", "It is  blue.")],
    },
    {
        "prompt": [say("user", "Sky?")],
        "chosen": [say("assistant", "Blue.")],
        "rejected": [say("user", "Blue.")],
    },
    {
        "prompt": [say("system", "S."), say("user", "Sky?")],
        "chosen": [say("assistant", "Blue.")],
        "rejected": [say("assistant", "Red.")],
    },
    {
        "prompt": [say("user", "Sky?"), say("assistant", "Blue.")],
        "chosen": [say("user", "Sure?")],
        "rejected": [say("assistant", "Red.")],
    },
    {
        "prompt": [],
        "chosen": [say("user", "Sky?"), say("assistant", "Blue.")],
        "rejected": [say("user", "Sky?"), say("assistant", "Red.")],
    },
    {
        "prompt": [say("developer", "D."), say("user", "Q?")],
        "chosen": [say("assistant", "A."), say("tool", "T"), say("assistant", "B.")],
        "rejected": [say("assistant", "C.")],
    },
]


@pytest.mark.parametrize("near_miss", NEAR_MISSES)
@pytest.mark.parametrize("make", [standard, conversational])
def test_near_misses_get_the_record_path_s_verdict(
    config: DatasetsConfig, tmp_path: Path, near_miss: dict[str, Any], make: Any
) -> None:
    """Whichever lane a batch goes through, a record a rule is close to catching gets the same
    verdict, digest and length as record by record."""
    rng = random.Random(1)
    records = [make(rng) for _ in range(5)] + [near_miss] + [make(rng) for _ in range(5)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert_same(*both_ways(config, ["pairs.jsonl"], tmp_path, max_seq_length=12))


@pytest.mark.parametrize("make", [standard, conversational])
def test_a_clean_pair_file_goes_through_the_lane_and_agrees(
    config: DatasetsConfig, tmp_path: Path, make: Any
) -> None:
    rng = random.Random(5)
    records = [make(rng) for _ in range(400)]
    lines = [(n, orjson.dumps(r) + b"\n") for n, r in enumerate(records, 1)]
    index = RecordIndex(config.split.seed)
    lane = Lanes(config.formats, index, placeholders(config)).read(LineBatch(1, lines))
    assert len(lane.rows) == len(records) and not lane.others
    assert lane.format is Format.PREFERENCE and lane.conversational is (make is conversational)
    checker = FormatChecker(config.formats, config.limits.max_quoted_chars)
    examples = [checker.check(Format.PREFERENCE, r)[0] for r in records]
    assert lane.digests == [index.digest(e)[0] for e in examples]  # type: ignore[arg-type]
    assert [lane.example(i) for i in range(len(records))] == examples
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    fast, slow = both_ways(config, ["pairs.jsonl"], tmp_path, validation_split=0.1)
    assert_same(fast, slow)
    assert fast.datasets[0].duplicates.within > 0  # few distinct pairs: repeats are caught


@pytest.mark.parametrize("counter", ["estimate", "model"])
@pytest.mark.parametrize("is_conversational", [False, True])
def test_the_pair_lane_measures_tokens_as_the_record_path_does(
    config: DatasetsConfig, counter: str, is_conversational: bool
) -> None:
    """Each side's tokens with the prompt in front, framed per message when conversational."""
    tokens: TokenCounter = (
        EstimatedTokens(config.tokens, "no model")
        if counter == "estimate"
        else ModelTokens(Tokenizer.from_str(word_tokenizer()), config.tokens, "m", "test")
    )
    rng = random.Random(17)
    make = conversational if is_conversational else standard
    records = [make(rng) for _ in range(60)]
    index = RecordIndex(config.split.seed)
    lane = PairLane(config.formats, index, placeholders(config), conversational=is_conversational)
    batch = lane.read(LineBatch(1, [(n, orjson.dumps(r)) for n, r in enumerate(records, 1)]))
    assert len(batch.rows) == len(records)
    checker = FormatChecker(config.formats, config.limits.max_quoted_chars)
    examples = [checker.check(Format.PREFERENCE, r)[0] for r in records]
    measured = tokens.measure(examples)  # type: ignore[arg-type]
    per_side = tokens.measure_conversations(batch.conversations).reshape(-1, 2)
    assert per_side.max(axis=1).tolist() == [longest for longest, _ in measured]
    assert per_side.sum(axis=1).tolist() == [processed for _, processed in measured]


def test_a_batch_no_lane_fits_is_parsed_for_the_record_path(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """Alpaca (no lane), and a chat batch that opens with a broken line (the chat lane)."""
    alpaca = [json.dumps({"instruction": f"Say {i}.", "output": str(i)}) for i in range(30)]
    chat = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Q{i}?"},
                    {"role": "assistant", "content": "A."},
                ]
            }
        )
        for i in range(30)
    ]
    (tmp_path / "alpaca.jsonl").write_text("\n".join(alpaca) + "\n")
    (tmp_path / "chat.jsonl").write_text("\n".join(["{bad", *chat]) + "\n")
    lanes = Lanes(config.formats, RecordIndex(config.split.seed), placeholders(config))
    numbered = [(n, line.encode()) for n, line in enumerate(alpaca, 1)]
    none = lanes.read(LineBatch(1, numbered))
    assert not len(none.rows) and len(none.others) == len(alpaca)
    numbered = [(n, line.encode()) for n, line in enumerate(["{bad", *chat], 1)]
    taken = lanes.read(LineBatch(1, numbered))
    assert len(taken.rows) == len(chat) and len(taken.others) == 1
    for name in ("alpaca.jsonl", "chat.jsonl"):
        assert_same(*both_ways(config, [name], tmp_path))
    assert validate(config, ["alpaca.jsonl"], roots=[tmp_path]).valid
