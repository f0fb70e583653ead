"""The chat lane (msgspec) gives every record the verdict, digest and length the record-by-record
path gives it: whole reports are compared with the lane on and off."""

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from server.settings import load_settings
from tests.bench.bench_validate import MODES, record_path
from tests.support import isolated_env
from tests.test_datasets_tokens import word_tokenizer
from tests.test_datasets_validator import validate
from tools.dataset_validator import chat_lane
from tools.dataset_validator.chat_lane import ChatLane
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.conversation import ROLE_OF_TAG, ROLE_TAGS, WELL_ORDERED
from tools.dataset_validator.formats import FormatChecker
from tools.dataset_validator.hygiene import Placeholders, RecordIndex, Sighting
from tools.dataset_validator.kinds import Format, WarningCode
from tools.dataset_validator.readers import LineBatch
from tools.dataset_validator.results import ValidationReport
from tools.dataset_validator.stats import LengthStats
from tools.dataset_validator.tallies import WarningLog
from tools.dataset_validator.tokens import EstimatedTokens, ModelTokens, TokenCounter

ORJSON_MAX_DEPTH = 1024
"""orjson refuses a document nested deeper ("depth limit exceeded"), and so must the lane."""


def small_batches(path: Path) -> DatasetsConfig:
    """The shipped config with small batches, so one file spans several and a lane meets
    batch edges."""
    settings = load_settings(env=isolated_env(path)).datasets
    reading = settings.reading.model_copy(update={"batch_bytes": 4096, "check_every_records": 7})
    return settings.model_copy(update={"reading": reading})


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return small_batches(tmp_path_factory.mktemp("config"))


def both_ways(
    config: DatasetsConfig, refs: list[str], root: Path, **kw: Any
) -> tuple[ValidationReport, ValidationReport]:
    """The report with the chat lane, and without it (every record the record path)."""
    fast = validate(config, refs, roots=[root], **kw)
    with record_path():
        slow = validate(config, refs, roots=[root], **kw)
    return fast, slow


def assert_same(fast: ValidationReport, slow: ValidationReport) -> None:
    assert fast.model_dump() == slow.model_dump()


def placeholders(config: DatasetsConfig) -> Placeholders:
    return Placeholders(config.warnings.placeholder_pattern)


# --- records that pass, and records that each break one rule in their own way ---------------

TEXTS = st.sampled_from(
    [
        "Hello there.",
        "Hello   there.",  # a whitespace variant of the one before
        "  Hello\nthere. ",
        "Hi {{ name }}, welcome!",
        "",
        "   ",
        "\x1c\x1d",  # whitespace to Python's str.isspace
        "\u3000",
        "\u200b",  # zero-width space: not whitespace to Python
        "naïve café 東京 " * 40,
        "a",
    ]
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "gpt"])


@st.composite
def near_misses(draw: st.DrawFn, turns: list[Any]) -> list[Any]:
    """A well-formed conversation with one or two changes, each of which may or may not break
    a rule (a blank content, an unknown role, a turn out of order, a null message...)."""
    turns = [dict(turn) for turn in turns]
    for _ in range(draw(st.integers(1, 2))):
        at = draw(st.integers(0, len(turns) - 1))
        change = draw(st.integers(0, 7))
        if turns[at] is None:
            continue
        if change == 0:
            turns[at]["content"] = draw(TEXTS)
        elif change == 1:
            turns[at]["role"] = draw(ROLES)
        elif change == 2:
            turns[at].pop("role", None)
        elif change == 3:
            turns[at]["content"] = None
        elif change == 4:
            turns[at] = None
        elif change == 5:
            turns[at]["extra"] = {"nested": [1, 2]}
        elif change == 6:
            turns.pop(at)
        else:
            turns.insert(at, {"role": draw(ROLES), "content": draw(TEXTS)})
        if not turns:
            break
    return turns


def conversation(rng: random.Random) -> dict[str, Any]:
    """A well-formed chat record, sometimes with a system turn, sometimes with a tool call."""
    turns = [{"role": "system", "content": "Be brief."}] if rng.random() < 0.7 else []
    for _ in range(rng.randint(1, 3)):
        turns.append({"role": "user", "content": rng.choice(["Hi?", "Hi  ?", "What is 2+2?"])})
        turns.append({"role": "assistant", "content": rng.choice(["4", "Hello!", "Sure."])})
    return {"messages": turns}


@st.composite
def lines(draw: st.DrawFn) -> str:
    seed = draw(st.integers(0, 2**16))
    rng = random.Random(seed)
    out = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.integers(0, 12))
        if kind <= 5:
            out.append(json.dumps(conversation(rng)))
        elif kind <= 8:
            turns = draw(near_misses(conversation(rng)["messages"]))
            out.append(json.dumps({"messages": turns, "id": seed}))
        elif kind == 9:
            out.append(draw(st.sampled_from(["", "   ", "[1, 2]", "{bad json", '{"text": "t"}'])))
        elif kind == 10:
            out.append(json.dumps({"messages": "not a list"}))
        elif kind == 11:
            out.append('{"messages": [{"role": "user", "content": "\\ud800"}]}')
        else:
            out.append(json.dumps({"messages": [{"role": "user", "content": 5}]}))
    return "\n".join(out) + draw(st.sampled_from(["", "\n"]))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=lines())
def test_the_column_lane_and_the_record_path_write_the_same_report(
    config: DatasetsConfig, tmp_path: Path, text: str
) -> None:
    (tmp_path / "data.jsonl").write_text(text, encoding="utf-8")
    fast, slow = both_ways(config, ["data.jsonl"], tmp_path, max_seq_length=40)
    assert_same(fast, slow)


def test_a_large_clean_file_goes_through_the_lane_and_agrees(
    config: DatasetsConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = random.Random(3)
    records = [conversation(rng) for _ in range(3000)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[::7]))
    calls = []
    read, parse = ChatLane.read, chat_lane.parse_record

    def counting(self: ChatLane, batch: LineBatch) -> Any:
        found = read(self, batch)
        calls.append(len(found.rows) == len(batch.items))
        return found

    def parsing(raw: bytes) -> Any:
        calls.append(False)
        return parse(raw)

    monkeypatch.setattr(ChatLane, "read", counting)
    monkeypatch.setattr(chat_lane, "parse_record", parsing)
    fast = validate(config, ["a.jsonl", "b.jsonl"], roots=[tmp_path], validation_split=0.1)
    monkeypatch.undo()
    assert calls and all(calls)  # every batch was taken whole, msgspec decoding every line
    _, slow = both_ways(config, ["a.jsonl", "b.jsonl"], tmp_path, validation_split=0.1)
    assert_same(fast, slow)
    assert fast.datasets[0].duplicates.within > 0 and fast.datasets[1].duplicates.across_datasets


USER = b'{"role": "user", "content": "Hi?"}'
ANSWER = b'{"role": "assistant", "content": "Fine."}'
TURNS = b'"messages": [' + USER + b", " + ANSWER + b"]"


def nested(depth: int) -> bytes:
    """An extra field whose value nests `depth` arrays inside the record's own object."""
    return b'{"extra": ' + b"[" * depth + b"]" * depth + b", " + TURNS + b"}"


@pytest.mark.parametrize(
    ("line", "errors"),
    [
        (
            b'{"messages": [{"role": "user", "content": ["not", "parts"]}, ' + ANSWER + b"]}",
            {"wrong_type": 1},
        ),
        (
            b'{"messages": [{"role": "user", "content": "caf\xe9"}, ' + ANSWER + b"]}",
            {"encoding_error": 1},
        ),
        (
            b'{"messages": [{"role": "user", "content": "\\ud800"}, ' + ANSWER + b"]}",
            {"invalid_json": 1},
        ),
        (b'{"messages": [{"role": "user", "content": 5}, ' + ANSWER + b"]}", {"wrong_type": 1}),
        (
            b'{"messages": [{"role": "user", "content": "\\u3000\\u001c"}, ' + ANSWER + b"]}",
            {"empty_content": 1},
        ),
        (b'{"messages": [{"role": "user", "content": "\\u200b"}, ' + ANSWER + b"]}", {}),
        (b'{"messages": [{"role": "user", "content": "a\\u0000b"}, ' + ANSWER + b"]}", {}),
        # what surrounds the turns: other fields, repeated keys, how deep and how large
        (b'{"id": "caf\xe9", ' + TURNS + b"}", {"encoding_error": 1}),
        (b'{"id": 1e309, ' + TURNS + b"}", {"invalid_json": 1}),
        (b'{"id": 1' + b"0" * 40 + b", " + TURNS + b"}", {}),
        (nested(ORJSON_MAX_DEPTH - 1), {}),
        (nested(ORJSON_MAX_DEPTH), {"invalid_json": 1}),
        (b'{"messages": 5, ' + TURNS + b"}", {}),
        (b"{" + TURNS + b', "messages": [' + USER + b"]}", {"no_assistant_turn": 1}),
        (b'{"messages": [{"role": "user", "content": "", "content": "Hi"}, ' + ANSWER + b"]}", {}),
        (b'{"messages": [{"role": "user", "name": "ann", "content": "Hi"}, ' + ANSWER + b"]}", {}),
        # members the strict shape does not read, which msgspec would skip unchecked
        (
            b'{"messages": [{"role": "user", "w": 1e309, "content": "Hi"}, ' + ANSWER + b"]}",
            {"invalid_json": 1},
        ),
        (
            b'{"messages": [{"role": "user", "caf\xe9": 1, "content": "Hi"}, ' + ANSWER + b"]}",
            {"encoding_error": 1},
        ),
        (
            b'{"messages": [{"role": "user", "content": "Hi", "deep": '
            + b"[" * 2000
            + b"]" * 2000
            + b"}, "
            + ANSWER
            + b"]}",
            {"invalid_json": 1},
        ),
        (b'{"mess\\u0061ges": [' + USER + b", " + ANSWER + b"]}", {}),
        (b'{"messages": [{"role": "us\\u0065r", "content": "Hi"}, ' + ANSWER + b"]}", {}),
        (b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}, ' + ANSWER + b"]}", {}),
        (
            b'{"messages": [{"role": "user", "content": "\xed\xa0\x80"}, ' + ANSWER + b"]}",
            {"encoding_error": 1},
        ),
        (b'{"messages": null}', {"wrong_type": 1}),
        (b"\xef\xbb\xbf{" + TURNS + b"}", {"invalid_json": 1}),
        (b"{" + TURNS + b"} {}", {"invalid_json": 1}),
    ],
)
def test_lines_the_lane_leaves_are_checked_record_by_record(
    config: DatasetsConfig, tmp_path: Path, line: bytes, errors: dict[str, int]
) -> None:
    """Whatever the lane does not take as well-formed chat goes record by record, and the
    report is the same either way: the lane parses as strictly as orjson does."""
    rng = random.Random(5)
    good = [json.dumps(conversation(rng)).encode() for _ in range(60)]
    good[30] = line
    (tmp_path / "d.jsonl").write_bytes(b"\n".join(good) + b"\n")
    fast, slow = both_ways(config, ["d.jsonl"], tmp_path)
    assert_same(fast, slow)
    assert fast.datasets[0].error_counts == errors


def test_orjson_refuses_what_the_lane_refuses_as_too_deep() -> None:
    """ORJSON_MAX_DEPTH is orjson's own limit; the lane must not take what orjson refuses."""
    orjson.loads(b"[" * ORJSON_MAX_DEPTH + b"]" * ORJSON_MAX_DEPTH)
    with pytest.raises(orjson.JSONDecodeError, match="depth"):
        orjson.loads(b"[" * (ORJSON_MAX_DEPTH + 1) + b"]" * (ORJSON_MAX_DEPTH + 1))


def test_the_lane_takes_records_with_other_members_too(config: DatasetsConfig) -> None:
    """An "id" beside the messages or in a message: orjson parses the line, and the lenient
    shape takes it into the lane all the same. What the record path reads (a message's name,
    tool calls, reasoning or weight; a record's tools, media or label) goes record by record."""
    lines = [
        b'{"id": 1, ' + TURNS + b"}",
        b'{"messages": [{"role": "user", "id": 1, "content": "Hi?"}, ' + ANSWER + b"]}",
        b"{" + TURNS + b', "meta": {"source": "x", "score": [1, 2.5, null]}}',
        b'{"messages": [{"role": "user", "name": "ann", "content": "Hi?"}, ' + ANSWER + b"]}",
        b'{"messages": [' + USER + b', {"role": "assistant", "content": "4", "thinking": "2+2"}]}',
        b"{" + TURNS + b', "tools": []}',
        b"{" + TURNS + b', "images": ["cat.png"]}',
        b"{" + TURNS + b', "label": true}',
        b'{"messages": [' + USER + b', {"role": "assistant", "content": "4", "weight": 0}]}',
    ]
    lane = ChatLane(config.formats, RecordIndex(config.split.seed), placeholders(config))
    chat = lane.read(LineBatch(1, list(enumerate(lines, 1))))
    assert chat.rows.tolist() == [0, 1, 2]
    assert [position for position, _ in chat.others] == [3, 4, 5, 6, 7, 8]
    assert chat.digests[0] == chat.digests[1] == chat.digests[2]


# --- the pieces the lane shares with the record path -----------------------------------------


TURN_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1e\x85\xa0\u3000\x00{}"),
        st.characters(exclude_categories=("Cs",)),  # JSON cannot carry a lone surrogate
    ),
    min_size=1,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(st.lists(TURN_TEXT, min_size=2, max_size=5), min_size=1, max_size=8))
def test_the_lane_digests_and_measures_a_record_as_the_record_path_does(
    config: DatasetsConfig, texts: list[list[str]]
) -> None:
    """Any text (whitespace of every kind, the turn separator, non-BMP characters, NUL): the
    lane's digest, turn lengths and verdict are the record path's."""
    index = RecordIndex(config.split.seed)
    checker = FormatChecker(config.formats, config.limits.max_quoted_chars)
    records = [
        {
            "messages": [
                {"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(turns)
            ]
        }
        for turns in texts
    ]
    lines = [(n, orjson.dumps(r) + b"\n") for n, r in enumerate(records, 1)]
    chat = ChatLane(config.formats, index, placeholders(config)).read(LineBatch(1, lines))
    examples = [checker.check(Format.CHAT, r)[0] for r in records]
    taken = [i for i, example in enumerate(examples) if example is not None]
    assert chat.rows.tolist() == taken
    assert [n for n, _ in chat.others] == [i for i in range(len(records)) if i not in taken]
    assert chat.digests == [index.digest(examples[i])[0] for i in taken]  # type: ignore[arg-type]
    chars = chat.conversations.chars.tolist()
    assert chars == [len(t) for i in taken for t in texts[i]]


def test_the_lane_takes_exactly_the_turn_orders_python_takes(config: DatasetsConfig) -> None:
    """The core checks the order a pair of turns at a time (ALLOWED_ORDER); every sequence of
    up to 7 turns is taken exactly when WELL_ORDERED matches it and it has an assistant turn."""
    sequences = [
        "".join(tags)
        for length in range(1, 8)
        for tags in itertools.product(ROLE_OF_TAG, repeat=length)
    ]
    name = {tag: role.value for role, tag in ROLE_TAGS.items()}
    lines = [
        json.dumps({"messages": [{"role": name[t], "content": "x"} for t in tags]}).encode()
        for tags in sequences
    ]
    lane = ChatLane(config.formats, RecordIndex(config.split.seed), placeholders(config))
    chat = lane.read(LineBatch(1, list(enumerate(lines, 1))))
    expected = [
        i for i, tags in enumerate(sequences) if WELL_ORDERED.fullmatch(tags) and "a" in tags
    ]
    assert chat.rows.tolist() == expected


def test_length_stats_do_not_depend_on_how_records_are_added() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 30, 500)  # many ties
    records = np.arange(1, 501)
    at_once, in_batches, backwards = LengthStats(5), LengthStats(5), LengthStats(5)
    at_once.add_many(lengths, records)
    for start in range(0, 500, 64):
        in_batches.add_many(lengths[start : start + 64], records[start : start + 64])
    for start in reversed(range(0, 500, 64)):
        backwards.add_many(lengths[start : start + 64], records[start : start + 64])
    for stats in (in_batches, backwards):
        assert stats.summary() == at_once.summary()
        assert stats.outliers(1.0) == at_once.outliers(1.0)
        assert sorted(stats._longest) == sorted(at_once._longest)
        assert sorted(stats._shortest) == sorted(at_once._shortest)
    pairs = sorted(
        zip(lengths.tolist(), records.tolist(), strict=True), key=lambda p: (-p[0], p[1])
    )
    assert sorted(-r for _, r in at_once._longest) == sorted(r for _, r in pairs[:5])


def test_warning_examples_are_the_first_records_whatever_the_order() -> None:
    log = WarningLog(3)
    log.add_many(WarningCode.TOO_LONG, [40, 41, 42, 43], ["a", "b", "c"])
    log.add(WarningCode.TOO_LONG, 7, "early")
    assert log.counts[WarningCode.TOO_LONG] == 5
    assert log.records(WarningCode.TOO_LONG) == [7, 40, 41]
    assert log.first_detail(WarningCode.TOO_LONG) == "early"


def test_the_index_reports_each_repeat_with_its_first_sighting() -> None:
    index = RecordIndex(seed=1)
    a, b, c = b"A" * 16, b"B" * 16, b"C" * 16
    collides = b"A" * 8 + b"Z" * 8  # the same first half as `a`, another digest
    seen = list(index.see_many([a, b, a], 0, np.array([False, True, True]), np.array([1, 2, 3])))
    assert seen == [(2, Sighting(dataset=0, validation=False, record=1))]
    seen = list(
        index.see_many([c, collides, b, c], 1, np.zeros(4, dtype=bool), np.array([1, 2, 3, 4]))
    )
    assert seen == [
        (2, Sighting(dataset=0, validation=True, record=2)),
        (3, Sighting(dataset=1, validation=False, record=1)),
    ]
    for _ in range(40):  # many runs, merged as they grow
        digests = [random.randbytes(16) for _ in range(50)]
        list(index.see_many(digests, 2, np.zeros(50, dtype=bool), np.arange(50)))
    repeat = list(index.see_many([collides], 3, np.zeros(1, dtype=bool), np.array([9])))
    assert repeat == [(0, Sighting(dataset=1, validation=False, record=2))]


@pytest.mark.parametrize("mode", MODES)
def test_json_lines_never_load_arrow(tmp_path: Path, mode: str) -> None:
    """Arrow is for Parquet: importing it costs ~80 MB of memory that JSON Lines do not need."""
    (tmp_path / "chat.jsonl").write_text(
        "".join(json.dumps(conversation(random.Random(n))) + "\n" for n in range(50))
    )
    script = (
        "import sys; from pathlib import Path; "
        "from tests.bench.bench_validate import validate; "
        f"validate(Path({str(tmp_path / 'chat.jsonl')!r}), {mode!r}); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyarrow'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("counter", ["estimate", "model"])
def test_the_lane_measures_tokens_as_the_record_path_does(
    config: DatasetsConfig, counter: str
) -> None:
    tokens: TokenCounter = (
        EstimatedTokens(config.tokens, "no model")
        if counter == "estimate"
        else ModelTokens(Tokenizer.from_str(word_tokenizer()), config.tokens, "m", "test")
    )
    rng = random.Random(13)
    records = [conversation(rng) for _ in range(120)]
    index = RecordIndex(config.split.seed)
    lane = ChatLane(config.formats, index, placeholders(config))
    batch = LineBatch(1, [(n, json.dumps(r).encode() + b"\n") for n, r in enumerate(records, 1)])
    chat = lane.read(batch)
    assert len(chat.rows) == len(records)
    checker = FormatChecker(config.formats, config.limits.max_quoted_chars)
    examples = [checker.check(Format.CHAT, r)[0] for r in records]
    expected = [longest for longest, _ in tokens.measure(examples)]  # type: ignore[arg-type]
    assert tokens.measure_conversations(chat.conversations).tolist() == expected


def test_a_placeholder_spelled_with_escapes_is_found_by_the_lane_too(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """The lane skips the placeholder search in a batch whose raw bytes cannot hold one; a
    \\u-escaped brace is still a brace."""
    escaped = '{"role": "assistant", "content": "Hi \\u007b\\u007b name }}!"}'
    lines = ['{"messages": [{"role": "user", "content": "Hi?"}, ' + escaped + "]}"] * 3
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    fast, slow = both_ways(config, ["e.jsonl"], tmp_path)
    assert_same(fast, slow)
    assert any(w.code == WarningCode.PLACEHOLDER for w in fast.datasets[0].warnings)
