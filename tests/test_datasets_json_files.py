""".json files as people bring them: one record object, a wrapper object around the records,
JSON Lines under a .json name, arrays; and errors placed where they are (true line and column),
each with a fix."""

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from server.settings import load_settings
from tests.support import isolated_env
from tests.test_datasets_validator import only, validate
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.kinds import ErrorCode, Format


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("config"))).datasets


def small_buffers(config: DatasetsConfig, max_line_bytes: int = 1024) -> DatasetsConfig:
    """Buffers of 4 KiB and records of at most `max_line_bytes`: every path across a refill."""
    return config.model_copy(
        update={
            "limits": config.limits.model_copy(update={"max_line_bytes": max_line_bytes}),
            "reading": config.reading.model_copy(update={"buffer_bytes": 4096}),
        }
    )


def chat(i: int) -> dict[str, Any]:
    """An OpenAI / TRL conversational record."""
    return {
        "messages": [
            {"role": "user", "content": f"Question {i}: how do I reset my password?"},
            {"role": "assistant", "content": f"Answer {i}: open Settings, then Security."},
        ]
    }


def lines_of(path: Path, needle: str) -> list[int]:
    return [n for n, line in enumerate(path.read_text().split("\n"), 1) if needle in line]


def test_a_json_file_holding_one_conversation_is_one_record(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """Axolotl's chat_template fixtures: one ShareGPT conversation, pretty-printed, per file."""
    conversation = {
        "conversations": [
            {"from": "system", "value": "You are a helpful assistant."},
            {"from": "human", "value": "What is the capital of France?"},
            {"from": "gpt", "value": "Paris."},
        ]
    }
    (tmp_path / "one.json").write_text(json.dumps(conversation, indent=2))
    dataset = only(validate(config, ["one.json"], roots=[tmp_path], validation_split=0))
    assert (dataset.format, dataset.records, dataset.valid_records) == (Format.SHAREGPT, 1, 1)
    assert dataset.error_counts == {"too_few_records": 1}  # one record is one record, not 7 errors
    assert dataset.files[0].records_key is None


@pytest.mark.parametrize("key", ["data", "train", "rows", "examples"])
@pytest.mark.parametrize("indent", [2, None])
def test_a_wrapper_object_is_read_from_its_list(
    config: DatasetsConfig, tmp_path: Path, key: str, indent: int | None
) -> None:
    records: list[Any] = [chat(i) for i in range(12)]
    records[7] = "not an object"
    wrapper = {"version": "1.0", "meta": {"tags": ["a", "b"]}, key: records, "count": 12}
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps(wrapper, indent=indent))
    dataset = only(validate(small_buffers(config), ["wrapped.json"], roots=[tmp_path]))
    assert (dataset.records, dataset.valid_records) == (12, 11)
    assert dataset.files[0].records_key == key
    (error,) = dataset.errors
    assert (error.code, error.record, error.line) == (
        ErrorCode.NOT_AN_OBJECT,
        8,
        lines_of(path, '"not an object"')[0] if indent else 1,
    )


def test_the_first_known_key_is_read_and_named(config: DatasetsConfig, tmp_path: Path) -> None:
    """A dump keyed by split: `train` is read; the report says so (test is left alone)."""
    split = {"train": [chat(i) for i in range(12)], "test": [chat(i) for i in range(50, 53)]}
    (tmp_path / "splits.json").write_text(json.dumps(split, indent=1))
    dataset = only(validate(config, ["splits.json"], roots=[tmp_path], validation_split=0))
    assert (dataset.records, dataset.valid, dataset.files[0].records_key) == (12, True, "train")


def test_an_object_s_only_list_of_objects_holds_the_records(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    wrapper = {"name": "support", "tags": ["faq"], "conversations_v2": [chat(i) for i in range(12)]}
    (tmp_path / "single.json").write_text(json.dumps(wrapper))
    dataset = only(validate(config, ["single.json"], roots=[tmp_path], validation_split=0))
    assert (dataset.records, dataset.valid, dataset.files[0].records_key) == (
        12,
        True,
        "conversations_v2",
    )


def test_an_object_with_several_lists_gets_one_error_naming_them(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    ambiguous = {"good": [chat(1), chat(2)], "bad": [chat(3)]}
    (tmp_path / "two.json").write_text(json.dumps(ambiguous, indent=2))
    dataset = only(validate(config, ["two.json"], roots=[tmp_path]))
    (error,) = dataset.errors  # one error: no too_few_records about a file not read
    assert error.code == ErrorCode.UNREADABLE_FILE and error.record is None
    assert "several lists of objects ('good', 'bad')" in error.message
    assert "data, train, rows, examples" in error.fix
    assert dataset.records == 0


def test_a_large_wrapper_is_streamed_in_bounded_memory(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """Over the record limit before its list ends, an object whose only list so far holds
    objects is read as that list, element by element, in the memory the same records take as
    an array; a second list of objects after it is an error."""
    limit = 1 << 18
    records = [chat(i) for i in range(10_000)]
    (tmp_path / "array.json").write_text(json.dumps(records, indent=1))
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"source": "export", "items": records}, indent=1))
    assert path.stat().st_size > 6 * limit
    capped = small_buffers(config, limit)
    validate(capped, ["array.json"], roots=[tmp_path])  # the first run's one-off set-up
    peaks = {}
    for name in ("array.json", "big.json"):
        tracemalloc.start()
        try:
            dataset = only(validate(capped, [name], roots=[tmp_path], validation_split=0))
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert dataset.records == 10_000 and dataset.valid
    assert dataset.files[0].records_key == "items"
    # Holding the file whole would cost more than 6 x limit over the array; the streamed read
    # may differ from the array's by the parser's buffers and the allocator's timing.
    assert peaks["big.json"] < peaks["array.json"] + 2 * limit, peaks
    path.write_text(json.dumps({"items": records, "more": [{"a": 1}]}, indent=1))
    dataset = only(validate(capped, ["big.json"], roots=[tmp_path], validation_split=0))
    assert "several lists of objects ('items', 'more')" in dataset.errors[0].message


def test_a_record_object_over_the_limit_is_too_long(config: DatasetsConfig, tmp_path: Path) -> None:
    record = {"text": "z" * 5000, "sources": [{"url": "https://example.com"}]}
    (tmp_path / "long.json").write_text(json.dumps(record, indent=2))
    dataset = only(validate(small_buffers(config), ["long.json"], roots=[tmp_path]))
    assert dataset.records == 1
    assert (dataset.errors[0].code, dataset.errors[0].line) == (ErrorCode.LINE_TOO_LONG, 1)


@pytest.mark.parametrize("cut_first_line", [False, True])
def test_json_lines_in_a_json_file_stay_lines(
    config: DatasetsConfig, tmp_path: Path, cut_first_line: bool
) -> None:
    """The datasets library writes JSON Lines under .json; a cut-off first line does not turn
    the file into one broken document."""
    lines = [json.dumps(chat(i)) for i in range(12)]
    if cut_first_line:
        lines[0] = lines[0][:40]
    (tmp_path / "lines.json").write_text("\n".join(lines) + "\n")
    dataset = only(validate(config, ["lines.json"], roots=[tmp_path], validation_split=0))
    assert dataset.records == 12 and dataset.valid_records == 12 - cut_first_line
    if cut_first_line:
        (error,) = dataset.errors
        assert (error.code, error.line) == (ErrorCode.INVALID_JSON, 1)
        assert error.message == "not valid JSON at column 41: unexpected end of data"


def test_a_cut_off_json_line_is_placed_on_its_own_line(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """The line keeps its newline, where orjson puts the end of a cut-off record (line 2,
    column 1); the column on the record's own line is what the user can find."""
    cut = json.dumps(chat(99))[:89]
    lines = [json.dumps(chat(i)) for i in range(12)] + [cut, json.dumps(chat(12))]
    (tmp_path / "cut.jsonl").write_text("\r\n".join(lines) + "\r\n")
    dataset = only(validate(config, ["cut.jsonl"], roots=[tmp_path]))
    (error,) = dataset.errors
    assert (error.code, error.record, error.line) == (ErrorCode.INVALID_JSON, 13, 13)
    assert error.message == "not valid JSON at column 90: unexpected end of data"


def test_json_array_errors_give_the_true_line_and_column(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """Columns count characters, across buffer refills of a file on one line too."""
    records = [
        json.dumps({"text": f"Ünïcödé record {i} — ok"}, ensure_ascii=False) for i in range(40)
    ]
    records[30] = '{"text": "bad",, "x": 1}'
    records[35] = '{"text":\n "multi",\n "y": 1 2}'
    body = "[" + ", ".join(records) + "]"
    (tmp_path / "array.json").write_text(body)
    first_line, third_line = body.split("\n")[0], body.split("\n")[2]
    column = first_line.index('"bad",,') + len('"bad",') + 1
    for checked in (config, small_buffers(config)):
        dataset = only(validate(checked, ["array.json"], roots=[tmp_path]))
        assert [(e.record, e.line, e.message) for e in dataset.errors] == [
            (
                31,
                1,
                f"not valid JSON at column {column}: unexpected character, expected a string key",
            ),
            (
                36,
                1,
                f"not valid JSON at line 3, column {third_line.index('2}') + 1}: unexpected "
                "character, expected ',' or '}'",
            ),
        ]


@pytest.mark.parametrize(
    ("body", "message", "fix"),
    [
        (
            "[\n" + ",\n".join(json.dumps(chat(i)) for i in range(12)) + ',\n{"messages": [',
            "the file ends before the JSON array (inside record 13) is closed",
            "cut off",
        ),
        (
            json.dumps(chat(1), indent=2) + "\n" + json.dumps(chat(2)) + "\n",
            "there is more data after the } that closes the JSON object (line 13)",
            ".jsonl",
        ),
        (
            "[" + ",".join(json.dumps(chat(i)) for i in range(12)) + "]\n[]",
            "there is more data after the ] that closes the JSON array (line 2)",
            ".jsonl",
        ),
    ],
)
def test_a_broken_document_is_a_file_error(
    config: DatasetsConfig, tmp_path: Path, body: str, message: str, fix: str
) -> None:
    """Not a record's fault: it names no record and blocks the dataset whatever is dropped."""
    (tmp_path / "broken.json").write_text(body)
    dataset = only(validate(config, ["broken.json"], roots=[tmp_path]))
    error = next(e for e in dataset.errors if e.code == ErrorCode.UNREADABLE_FILE)
    assert error.record is None and error.message == f"broken.json: {message}"
    assert fix in error.fix and not dataset.valid


def test_every_error_has_a_fix(config: DatasetsConfig, tmp_path: Path) -> None:
    dataset = only(validate(config, ["errors.jsonl"]))
    assert len({e.code for e in dataset.errors}) == 9
    assert all(e.fix for e in dataset.errors)
    (tmp_path / "utf16.jsonl").write_bytes("{}".encode("utf-16"))
    unreadable = only(validate(config, ["utf16.jsonl"], roots=[tmp_path]))
    assert all(e.fix for e in unreadable.errors)
    assert unreadable.errors[0].fix.startswith("Save the file as UTF-8")  # this case's own fix
