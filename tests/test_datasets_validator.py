"""validate_datasets as a service: every format and file type, every error and warning, the split,
token statistics, fingerprints, progress and cancellation."""

import gzip
import hashlib
import json
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from server.settings import load_settings
from tests.support import isolated_env
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.formats import Example
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.hygiene import RecordIndex, Splitter
from tools.dataset_validator.kinds import ErrorCode, Format, Role, WarningCode
from tools.dataset_validator.readers import _value_bytes
from tools.dataset_validator.results import DatasetReport, ValidationReport
from tools.dataset_validator.roots import allowed_roots
from tools.dataset_validator.scan import ScanHooks
from tools.dataset_validator.service import ValidationRequest, validate_datasets
from tools.dataset_validator.sources import Sources
from tools.errors import UserError

DATA = Path(__file__).parent / "data" / "datasets"
NO_HUB = HubAccess(endpoint="http://127.0.0.1:9", timeout_s=1)  # a closed port: never reached


def validate(
    config: DatasetsConfig,
    refs: list[str],
    *,
    roots: list[Path] | None = None,
    hooks: ScanHooks | None = None,
    max_seq_length: int = 2048,
    **request: Any,
) -> ValidationReport:
    sources = Sources(config, allowed_roots(roots or [DATA]), NO_HUB, None)
    return validate_datasets(
        ValidationRequest(datasets=refs, max_seq_length=max_seq_length, **request),
        config,
        sources,
        NO_HUB,
        hooks,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    """The shipped datasets config, loaded once for the module."""
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("config"))).datasets


def only(report: ValidationReport) -> DatasetReport:
    (dataset,) = report.datasets
    return dataset


def warning(dataset: DatasetReport, code: WarningCode) -> Any:
    return next(w for w in dataset.warnings if w.code == code)


def chat_line(question: str, answer: str, system: str | None = "Be brief.") -> str:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages}) + "\n"


def chat_file(path: Path, count: int, *, start: int = 0, **kwargs: Any) -> Path:
    path.write_text(
        "".join(
            chat_line(f"Question {i}?", f"Answer number {i}.", **kwargs)
            for i in range(start, start + count)
        ),
        encoding="utf-8",
    )
    return path


# --- formats and file types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("chat.jsonl", Format.CHAT),
        ("sharegpt.jsonl", Format.SHAREGPT),
        ("alpaca.json", Format.ALPACA),
        ("prompt_completion.csv", Format.PROMPT_COMPLETION),
        ("preference.jsonl", Format.PREFERENCE),
        ("preference_conversational.jsonl", Format.PREFERENCE),
        ("unpaired_preference.jsonl", Format.UNPAIRED_PREFERENCE),
        ("text.jsonl", Format.TEXT),
    ],
)
def test_every_format_sample_is_read_and_named(
    config: DatasetsConfig, name: str, fmt: Format
) -> None:
    dataset = only(validate(config, [name]))
    assert dataset.format is fmt
    assert dataset.format_counts == {fmt.value: 12}
    assert dataset.records == dataset.valid_records == 12
    assert dataset.error_counts == {} and dataset.valid
    assert dataset.token_stats is not None and dataset.token_stats.count == 12


def to_parquet(source: Path, target: Path) -> Path:
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), target, row_group_size=5)
    return target


@pytest.mark.parametrize("kind", ["parquet", "jsonl.gz", "json.gz", "csv.gz", "parquet.gz"])
def test_parquet_and_gzip_files_read_like_the_plain_ones(
    config: DatasetsConfig, tmp_path: Path, kind: str
) -> None:
    plain = {
        "parquet": "chat.jsonl",
        "jsonl.gz": "chat.jsonl",
        "json.gz": "alpaca.json",
        "csv.gz": "prompt_completion.csv",
        "parquet.gz": "chat.jsonl",
    }[kind]
    source = DATA / plain
    if kind.startswith("parquet"):
        source = to_parquet(source, tmp_path / "chat.parquet")
    target = tmp_path / f"data.{kind}"
    if kind.endswith(".gz"):
        target.write_bytes(gzip.compress(source.read_bytes()))
    else:
        shutil.copy(source, target)
    expected = only(validate(config, [plain]))
    dataset = only(validate(config, [target.name], roots=[tmp_path]))
    assert dataset.files[0].compressed is kind.endswith(".gz")
    assert dataset.files[0].file_type.value == kind.removesuffix(".gz")
    assert (dataset.format, dataset.valid_records, dataset.valid) == (
        expected.format,
        expected.valid_records,
        True,
    )
    assert dataset.token_stats == expected.token_stats


def with_limits(config: DatasetsConfig, **limits: Any) -> DatasetsConfig:
    return config.model_copy(update={"limits": config.limits.model_copy(update=limits)})


@pytest.mark.parametrize("column", ["text", "messages"])
def test_a_parquet_value_over_the_limit_is_a_record_error(
    config: DatasetsConfig, tmp_path: Path, column: str
) -> None:
    """Found from arrow's sizes (a plain or a nested column), not by converting the value;
    the rows around it are read as usual."""

    def row(number: int, answer: str) -> dict[str, Any]:
        if column == "text":
            return {"text": answer}
        turns = [("user", f"Question {number}?"), ("assistant", answer)]
        return {"messages": [{"role": role, "content": text} for role, text in turns]}

    rows = [row(i, f"Answer {i}.") for i in range(12)]
    rows.insert(7, row(7, "x" * 5000))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "long.parquet", row_group_size=5)
    dataset = only(
        validate(with_limits(config, max_line_bytes=2048), ["long.parquet"], roots=[tmp_path])
    )
    assert dataset.error_counts == {"line_too_long": 1}
    (error,) = dataset.errors
    assert error.record == 8
    assert error.message == (
        f"the value of column '{column}' is longer than 2048 bytes (limits.max_line_bytes)"
    )
    assert (dataset.records, dataset.valid_records) == (13, 12)


def test_parquet_batches_over_the_value_limit_read_like_the_jsonl(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """Batches larger than max_line_bytes, of values each under it (nested, dictionary-encoded,
    in several row groups), are measured and read exactly as the same records in JSON Lines."""
    source = chat_file(tmp_path / "chat.jsonl", 60)
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    table = pa.Table.from_pylist(rows).append_column(
        "source", pa.array(["support", "sales", None] * 20).dictionary_encode()
    )
    pq.write_table(table, tmp_path / "chat.parquet", row_group_size=25)
    assert pq.ParquetFile(tmp_path / "chat.parquet").metadata.num_row_groups == 3
    config = with_limits(config, max_line_bytes=1024)
    expected = only(validate(config, ["chat.jsonl"], roots=[tmp_path]))
    dataset = only(validate(config, ["chat.parquet"], roots=[tmp_path]))
    assert dataset.records == dataset.valid_records == expected.valid_records == 60
    assert dataset.error_counts == {} and dataset.valid
    assert (dataset.token_stats, dataset.split) == (expected.token_stats, expected.split)


def test_a_parquet_column_chunk_past_the_bound_is_refused_before_reading(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    rows = [{"text": f"Record {i} " + "words " * 100} for i in range(40)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "wide.parquet", row_group_size=20)
    config = with_limits(config, max_parquet_column_chunk_bytes=4096)
    dataset = only(validate(config, ["wide.parquet"], roots=[tmp_path]))
    assert (dataset.error_counts["file_too_large"], dataset.records) == (1, 0)
    message = next(e.message for e in dataset.errors if e.code == "file_too_large")
    assert message.startswith("wide.parquet: column 'text' of row group 1 is ")
    assert "limits.max_parquet_column_chunk_bytes (4,096)" in message
    assert "row_group_size" in message and str(tmp_path) not in message


def test_value_sizes_are_measured_by_arrow_for_every_shape() -> None:
    """Strings and fixed-width values, nested ones summed per value; nulls count 0."""
    cases = [
        (pa.array(["ab", None, "ćd"]), [2, 0, 3]),
        (pa.array(["abc", None], pa.string_view()), [3, 0]),
        (pa.array([["a"], ["bb", "ccc"], None, ["dddd"]]).slice(1), [5, 0, 4]),
        (pa.array([["x"], ["yy", "z"]], pa.large_list(pa.large_string())), [1, 3]),
        (pa.array([["x"], ["yy", "z"]], pa.list_view(pa.string())), [1, 3]),
        (pa.array([{"a": "x", "b": 1}, {"a": "yyy", "b": 2}, None]).slice(1), [11, 0]),
        (
            pa.array([[("a", 1)], None, [("bb", 2), ("c", 3)]], pa.map_(pa.string(), pa.int64())),
            [9, 0, 19],
        ),
        (pa.array([[1, 2], [3, 4], None], pa.list_(pa.int64(), 2)).slice(1), [16, 0]),
        (pa.array(["x", "yy", None, "x"]).dictionary_encode().slice(1), [2, 0, 1]),
        (pa.array([1.5, None, 2.5]), [8, 0, 8]),
    ]
    for array, sizes in cases:
        assert _value_bytes(array).tolist() == sizes, array.type


def test_bom_crlf_and_blank_lines_are_accepted_and_counted(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    lines = [chat_line(f"Q{i}?", f"A{i}.") for i in range(12)]
    text = "\r\n".join(line.rstrip("\n") for line in lines[:6]) + "\r\n\r\n" + "".join(lines[6:])
    (tmp_path / "crlf.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    dataset = only(validate(config, ["crlf.jsonl"], roots=[tmp_path]))
    assert dataset.records == dataset.valid_records == 12
    assert dataset.blank_lines == 1
    assert warning(dataset, WarningCode.BLANK_LINES).count == 1
    assert dataset.valid  # blank lines warn, they do not fail


def test_a_json_array_is_split_into_records_with_their_lines(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    records = [{"text": f'line one {i} with a ] and a }}, \\" quote\nand two'} for i in range(11)]
    body = ",\n".join(json.dumps(r) for r in records)
    (tmp_path / "array.json").write_text(f'[\n{body},\n  ["not an object"]\n]\n')
    dataset = only(validate(config, ["array.json"], roots=[tmp_path]))
    assert dataset.records == 12 and dataset.valid_records == 11
    (error,) = dataset.errors
    assert (error.code, error.record, error.line) == (ErrorCode.NOT_AN_OBJECT, 12, 13)


# --- errors ---------------------------------------------------------------------------------


def test_csv_rows_that_cannot_be_records(config: DatasetsConfig, tmp_path: Path) -> None:
    limits = config.limits.model_copy(update={"max_line_bytes": 1024})
    small = config.model_copy(update={"limits": limits})
    rows = [f'"Question {i}?","Answer {i}."' for i in range(10)]
    rows += ['"only one field"', '"caf\xe9","ok"', f'"{"x" * 2000}","too long"', '"last?","ok"']
    data = "prompt,completion\n" + "\n".join(rows) + "\n"
    (tmp_path / "rows.csv").write_bytes(data.encode("latin-1"))
    dataset = only(validate(small, ["rows.csv"], roots=[tmp_path]))
    assert {(e.code, e.line) for e in dataset.errors} == {
        (ErrorCode.INVALID_CSV, 12),
        (ErrorCode.ENCODING_ERROR, 13),
        (ErrorCode.LINE_TOO_LONG, 14),
    }
    assert dataset.records == 14 and dataset.valid_records == 11


def test_an_oversized_json_array_element(config: DatasetsConfig, tmp_path: Path) -> None:
    limits = config.limits.model_copy(update={"max_line_bytes": 1024})
    small = config.model_copy(update={"limits": limits})
    records = [{"text": f"record {i}"} for i in range(10)]
    records.insert(3, {"text": "y" * 5000})
    body = ",\n".join(json.dumps(r) for r in records)
    (tmp_path / "big.json").write_text(f"[\n{body}\n]")
    dataset = only(validate(small, ["big.json"], roots=[tmp_path]))
    assert [(e.code, e.record, e.line) for e in dataset.errors] == [(ErrorCode.LINE_TOO_LONG, 4, 5)]
    assert dataset.valid_records == 10


def test_every_record_error_is_reported_with_its_line(config: DatasetsConfig) -> None:
    dataset = only(validate(config, ["errors.jsonl"]))
    assert dataset.records == 21 and dataset.valid_records == 12 and not dataset.valid
    lines = {e.code: e.line for e in dataset.errors}
    assert lines == {
        ErrorCode.INVALID_JSON: 2,
        ErrorCode.NOT_AN_OBJECT: 3,
        ErrorCode.MISSING_FIELD: 4,
        ErrorCode.EMPTY_CONTENT: 5,
        ErrorCode.UNKNOWN_ROLE: 6,
        ErrorCode.NO_ASSISTANT_TURN: 7,
        ErrorCode.ROLE_ORDER: 8,
        ErrorCode.ENCODING_ERROR: 9,
        ErrorCode.WRONG_TYPE: 10,
    }
    assert dataset.error_counts == {code.value: 1 for code in lines}
    by_code = {e.code: e for e in dataset.errors}
    assert by_code[ErrorCode.MISSING_FIELD].field == "messages[0].content"
    assert "'customer'" in by_code[ErrorCode.UNKNOWN_ROLE].message


def test_examples_are_capped_but_counts_are_complete(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    lines = [chat_line(f"Q{i}?", f"A{i}.") for i in range(12)] + ["{broken\n"] * 40
    (tmp_path / "many.jsonl").write_text("".join(lines))
    dataset = only(validate(config, ["many.jsonl"], roots=[tmp_path]))
    keep = config.limits.examples_per_error_code
    assert dataset.error_counts == {"invalid_json": 40}
    assert [e.line for e in dataset.errors] == list(range(13, 13 + keep))


def test_values_quoted_from_a_file_are_bounded(config: DatasetsConfig, tmp_path: Path) -> None:
    """A 2 MiB role and ten 1 MB keys come back as short excerpts with their full length."""
    role = "r" * (2 << 20)
    bad_role = {
        "messages": [{"role": role, "content": "hi"}, {"role": "assistant", "content": "ok"}]
    }
    keys = {f"{i}{'k' * 1_000_000}": i for i in range(10)}
    lines = [json.dumps(bad_role) + "\n"] * 3 + [json.dumps(keys) + "\n"]
    lines += [chat_line(f"Q{i}?", f"A{i}.") for i in range(12)]
    (tmp_path / "hostile.jsonl").write_text("".join(lines))
    report = validate(config, ["hostile.jsonl"], roots=[tmp_path])
    limit = config.limits.max_quoted_chars
    by_code: dict[ErrorCode, list[Any]] = {}
    for error in only(report).errors:
        by_code.setdefault(error.code, []).append(error)
    assert len(by_code[ErrorCode.UNKNOWN_ROLE]) == 3
    for error in by_code[ErrorCode.UNKNOWN_ROLE]:
        assert f"is '{'r' * limit}…' (2,097,152 characters); use one of" in error.message
    (missing,) = by_code[ErrorCode.MISSING_FIELD]
    assert f"the record has: '0{'k' * (limit - 1)}…' (1,000,001 characters)" in missing.message
    assert missing.message.endswith(" and 9 more")
    assert len(report.model_dump_json()) < 20_000


def test_identical_pair(config: DatasetsConfig) -> None:
    dataset = only(validate(config, ["identical_pair.jsonl"]))
    assert dataset.error_counts == {"identical_pair": 1}
    assert dataset.errors[0].line == 12


def test_a_file_that_mixes_formats_is_an_error(config: DatasetsConfig) -> None:
    dataset = only(validate(config, ["mixed.jsonl"]))
    assert dataset.format is Format.CHAT
    assert dataset.format_counts == {"chat": 10, "alpaca": 2}
    assert dataset.valid_records == 10 and not dataset.valid
    assert dataset.error_counts == {"mixed_format": 2}
    assert [(e.line, e.message) for e in dataset.errors] == [
        (11, "the record is alpaca; most records are chat"),
        (12, "the record is alpaca; most records are chat"),
    ]


def test_a_line_over_the_limit_is_skipped_and_reading_goes_on(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    config = config.model_copy(
        update={"limits": config.limits.model_copy(update={"max_line_bytes": 1024})}
    )
    long_line = chat_line("Q?", "x" * 2000)
    chat_file(tmp_path / "long.jsonl", 12)
    with (tmp_path / "long.jsonl").open("a") as file:
        file.write(long_line + chat_line("After?", "Still read."))
    dataset = only(validate(config, ["long.jsonl"], roots=[tmp_path]))
    assert dataset.error_counts == {"line_too_long": 1}
    assert dataset.errors[0].line == 13
    assert dataset.records == 14 and dataset.valid_records == 13


def test_a_50_mb_single_line_is_never_held_whole(config: DatasetsConfig, tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("w") as file:
        file.write('{"text": "')
        chunk = "a" * 1_000_000
        for _ in range(50):
            file.write(chunk)
        file.write('"}\n')
        for i in range(10):
            file.write(json.dumps({"text": f"short record {i}"}) + "\n")
    tracemalloc.start()
    try:
        dataset = only(validate(config, ["huge.jsonl"], roots=[tmp_path]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dataset.error_counts == {"line_too_long": 1}
    assert (dataset.errors[0].line, dataset.records, dataset.valid_records) == (1, 11, 10)
    limit = config.limits.max_line_bytes
    assert peak < 3 * limit < 50_000_000, f"peak {peak:,} bytes"


def test_an_empty_file_is_an_error(config: DatasetsConfig, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    dataset = only(validate(config, ["empty.jsonl"], roots=[tmp_path]))
    assert dataset.error_counts == {"empty_dataset": 1}
    assert dataset.records == 0 and not dataset.valid


def test_too_few_valid_records(config: DatasetsConfig, tmp_path: Path) -> None:
    chat_file(tmp_path / "small.jsonl", 3)
    dataset = only(validate(config, ["small.jsonl"], roots=[tmp_path]))
    assert dataset.error_counts == {"too_few_records": 1}
    assert "3 valid records; at least 10" in dataset.errors[0].message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("\ufeff".encode("utf-16-le") + b"[]", "UTF-16"),
        (gzip.compress(b'{"text": "a"}\n' * 100)[:-30], "gzip"),
        (b"PAR1 not really", "Parquet"),
    ],
    ids=["utf-16", "gzip", "parquet"],  # gzip bytes hold the time: every worker must agree
)
def test_unreadable_files_say_why(
    config: DatasetsConfig, tmp_path: Path, data: bytes, reason: str
) -> None:
    name = "bad.parquet" if reason == "Parquet" else "bad.jsonl"
    (tmp_path / name).write_bytes(data)
    dataset = only(validate(config, [name], roots=[tmp_path]))
    assert "unreadable_file" in dataset.error_counts and not dataset.valid
    assert reason in next(e.message for e in dataset.errors if e.code == "unreadable_file")


# --- warnings -------------------------------------------------------------------------------


def test_duplicates_within_a_dataset_ignore_whitespace(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    path = chat_file(tmp_path / "dupes.jsonl", 12)
    with path.open("a") as file:
        file.write(chat_line("Question  3?", " Answer number\n3. "))
    dataset = only(validate(config, ["dupes.jsonl"], roots=[tmp_path]))
    assert dataset.duplicates.within == 1
    found = warning(dataset, WarningCode.DUPLICATE)
    assert found.records == [13] and "record 13 repeats record 4" in found.message
    assert dataset.valid  # a warning, not an error


def test_duplicates_across_datasets_and_train_validation_overlap(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    chat_file(tmp_path / "a.jsonl", 12)
    chat_file(tmp_path / "b.jsonl", 12, start=10)
    chat_file(tmp_path / "val.jsonl", 12, start=20)
    report = validate(
        config, ["a.jsonl", "b.jsonl"], roots=[tmp_path], validation_dataset="val.jsonl"
    )
    first, second, held_out = report.datasets
    assert first.duplicates.across_datasets == 0
    assert second.duplicates.across_datasets == 2
    assert warning(second, WarningCode.DUPLICATE_ACROSS_DATASETS).records == [1, 2]
    assert held_out.role == "validation" and held_out.split.train == 0
    assert held_out.duplicates.train_validation_overlap == 2  # records 20 and 21 of b.jsonl
    assert warning(held_out, WarningCode.TRAIN_VALIDATION_OVERLAP).records == [1, 2]
    assert report.split.method == "validation_dataset"
    assert report.split.validation_records == 12 and report.split.train_records == 24


def test_records_longer_than_max_seq_length(config: DatasetsConfig, tmp_path: Path) -> None:
    path = chat_file(tmp_path / "long.jsonl", 12)
    with path.open("a") as file:
        file.write(chat_line("Tell me everything.", "word " * 400))
    dataset = only(validate(config, ["long.jsonl"], roots=[tmp_path], max_seq_length=256))
    found = warning(dataset, WarningCode.TOO_LONG)
    assert found.count == 1 and found.records == [13]
    assert "max_seq_length (256 tokens)" in found.message


def test_template_placeholders(config: DatasetsConfig, tmp_path: Path) -> None:
    path = chat_file(tmp_path / "templated.jsonl", 12)
    with path.open("a") as file:
        file.write(chat_line("Hi, I am {{ customer_name }}.", "Hello {{customer_name}}!"))
    dataset = only(validate(config, ["templated.jsonl"], roots=[tmp_path]))
    found = warning(dataset, WarningCode.PLACEHOLDER)
    assert found.records == [13] and "'{{ customer_name }}'" in found.message
    long_name = "{{ " + "n" * 1_000_000 + " }}"
    chat_file(tmp_path / "long.jsonl", 12, start=1)
    with (tmp_path / "long.jsonl").open("a") as file:
        file.write(chat_line(long_name, "Hello."))
    dataset = only(validate(config, ["long.jsonl"], roots=[tmp_path]))
    message = warning(dataset, WarningCode.PLACEHOLDER).message
    assert message.endswith("…' (1,000,006 characters)")
    assert len(message) < 2 * config.limits.max_quoted_chars


def test_length_outliers(config: DatasetsConfig, tmp_path: Path) -> None:
    path = chat_file(tmp_path / "outlier.jsonl", 60)
    with path.open("a") as file:
        file.write(chat_line("And the long one?", "Many words here. " * 150))
    dataset = only(validate(config, ["outlier.jsonl"], roots=[tmp_path]))
    found = warning(dataset, WarningCode.LENGTH_OUTLIER)
    assert found.count == 1 and found.records == [61]


def test_share_of_conversations_without_a_system_message(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    chat_file(tmp_path / "bare.jsonl", 12, system=None)
    dataset = only(validate(config, ["bare.jsonl"], roots=[tmp_path]))
    found = warning(dataset, WarningCode.NO_SYSTEM_MESSAGE)
    assert found.count == 12 and "100%" in found.message
    chat_file(tmp_path / "framed.jsonl", 12)
    framed = only(validate(config, ["framed.jsonl"], roots=[tmp_path]))
    assert all(w.code != WarningCode.NO_SYSTEM_MESSAGE for w in framed.warnings)


# --- split ----------------------------------------------------------------------------------


def test_split_is_seeded_deterministic_and_reported(config: DatasetsConfig, tmp_path: Path) -> None:
    chat_file(tmp_path / "many.jsonl", 400)
    first = validate(config, ["many.jsonl"], roots=[tmp_path], validation_split=0.2)
    again = validate(config, ["many.jsonl"], roots=[tmp_path], validation_split=0.2)
    assert first.split == again.split
    split = first.split
    assert split.method == "validation_split" and split.seed == config.split.seed
    assert split.train_records + split.validation_records == 400
    assert 50 <= split.validation_records <= 110  # 20% of 400, give or take chance


def test_the_seed_decides_the_sides() -> None:
    examples = [
        Example(Format.TEXT, [(Role.ASSISTANT, f"record {i}")], conversational=False)
        for i in range(200)
    ]

    def sides(seed: int) -> list[bool]:
        index, splitter = RecordIndex(seed), Splitter(0.2)
        return [splitter.is_validation(index.digest(example)[0]) for example in examples]

    assert sides(42) == sides(42)
    assert sides(42) != sides(7)


def test_default_split_and_no_split(config: DatasetsConfig) -> None:
    report = validate(config, ["chat.jsonl"])
    assert report.split.validation_split == config.split.default_validation_split
    none = validate(config, ["chat.jsonl"], validation_split=0)
    assert none.split.method == "none" and none.split.validation_records == 0


def test_an_empty_validation_set_is_a_warning(config: DatasetsConfig, tmp_path: Path) -> None:
    chat_file(tmp_path / "train.jsonl", 12)
    (tmp_path / "held_out.jsonl").write_text('{"messages": "not a list"}\n')
    report = validate(
        config, ["train.jsonl"], roots=[tmp_path], validation_dataset="held_out.jsonl"
    )
    assert report.split.validation_records == 0
    assert [i.code for i in report.issues] == [WarningCode.EMPTY_VALIDATION]


@pytest.mark.parametrize(
    ("refs", "request_args", "message"),
    [
        (["chat.jsonl"], {"validation_split": 0.9}, "outside [0.01, 0.5]"),
        (
            ["chat.jsonl"],
            {"validation_split": 0.1, "validation_dataset": "text.jsonl"},
            "either validation_split or validation_dataset",
        ),
        (["chat.jsonl", "chat.jsonl"], {}, "repeated: chat.jsonl"),
        (["chat.jsonl"], {"validation_dataset": "chat.jsonl"}, "repeated: chat.jsonl"),
        ([f"file{i}.jsonl" for i in range(11)], {}, "between 1 and 10 datasets"),
    ],
)
def test_bad_requests_are_refused_before_reading(
    config: DatasetsConfig, refs: list[str], request_args: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace(".", r"\.")):
        validate(config, refs, **request_args)


# --- across datasets and the draft's method --------------------------------------------------


def test_formats_that_no_method_trains_together(config: DatasetsConfig) -> None:
    report = validate(config, ["chat.jsonl", "preference.jsonl"], validation_split=0)
    assert all(d.valid for d in report.datasets) and not report.valid
    assert [i.code for i in report.issues] == [ErrorCode.MIXED_FORMAT]


# --- tokens, preview, fingerprints ----------------------------------------------------------


def test_token_estimate_follows_the_documented_rule(config: DatasetsConfig, tmp_path: Path) -> None:
    lines = [json.dumps({"text": "abcd" * (10 + i)}) + "\n" for i in range(10)]
    (tmp_path / "plain.jsonl").write_text("".join(lines))
    report = validate(config, ["plain.jsonl"], roots=[tmp_path], validation_split=0)
    stats = only(report).token_stats
    assert stats is not None
    # plain text: characters / 4, no chat framing; lengths 10..19 tokens
    assert (stats.count, stats.total, stats.max, stats.p50) == (10, sum(range(10, 20)), 19, 14)
    assert report.train_tokens == stats.total
    # buckets up to 16 and 17..32 tokens (tokens.length_histogram_bounds), each by its longest
    assert report.length_histogram == [(16, 7), (19, 3)]
    assert report.tokenizer.kind == "estimate" and "no model is selected" in report.tokenizer.detail
    chat_file(tmp_path / "one.jsonl", 10, system=None)
    chat = only(validate(config, ["one.jsonl"], roots=[tmp_path])).token_stats
    per_message = config.tokens.tokens_per_message
    # "Question 0?" (11) + "Answer number 0." (16) -> ceil(27 / 4) = 7, plus 2 messages
    assert chat is not None and chat.p50 == 7 + 2 * per_message


def test_preference_pairs_count_both_sequences(config: DatasetsConfig) -> None:
    report = validate(config, ["preference.jsonl"], validation_split=0)
    stats = only(report).token_stats
    assert stats is not None and report.train_tokens > stats.total  # longest vs both


def test_preview_is_labelled_data_in_the_common_shape_and_short(config: DatasetsConfig) -> None:
    limits = config.limits.model_copy(update={"preview_max_chars": 20})
    config = config.model_copy(update={"limits": limits})
    report = validate(config, ["preference.jsonl", "sharegpt.jsonl"])
    assert len(report.preview) == config.limits.preview_records
    assert all(record.untrusted for record in report.preview)
    assert "untrusted" in report.notice and "never follow" in report.notice
    first = report.preview[0]
    assert (first.dataset, first.record, first.format) == ("preference.jsonl", 1, "preference")
    assert [t.speaker for t in first.turns] == ["user", "assistant"]
    assert first.rejected is not None
    assert first.rejected[-1].text == "Just boil it for a w… (25 characters)"
    assert first.turns[0].text == "How long do I boil a… (43 characters)"
    dumped = report.model_dump(mode="json")["preview"][0]
    assert "messages" not in dumped and "role" not in dumped["turns"][0]


def test_each_file_is_fingerprinted(config: DatasetsConfig, tmp_path: Path) -> None:
    gz = tmp_path / "chat.jsonl.gz"
    gz.write_bytes(gzip.compress((DATA / "chat.jsonl").read_bytes()))
    report = validate(config, ["chat.jsonl", str(gz)], roots=[DATA, tmp_path])
    for dataset, path in zip(report.datasets, [DATA / "chat.jsonl", gz], strict=True):
        assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert dataset.size_bytes == path.stat().st_size
        assert dataset.files[0].sha256 == dataset.sha256


# --- progress and cancellation --------------------------------------------------------------


def test_progress_reaches_the_total(config: DatasetsConfig, tmp_path: Path) -> None:
    chat_file(tmp_path / "big.jsonl", 5000)
    reading = config.reading.model_copy(
        update={"check_every_records": 500, "progress_interval_s": 1e-9}
    )
    config = config.model_copy(update={"reading": reading})
    seen: list[tuple[int, int, str]] = []
    hooks = ScanHooks(progress=lambda done, total, message: seen.append((done, total, message)))
    validate(config, ["big.jsonl"], roots=[tmp_path], hooks=hooks)
    size = (tmp_path / "big.jsonl").stat().st_size
    assert len(seen) >= 10
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)
    assert seen[-1][:2] == (size, size) and "5,000 records" in seen[-1][2]


def test_a_cancelled_scan_stops_reading(config: DatasetsConfig, tmp_path: Path) -> None:
    chat_file(tmp_path / "big.jsonl", 5000)
    reading = config.reading.model_copy(update={"check_every_records": 100})
    config = config.model_copy(update={"reading": reading})
    calls = []

    class Cancelled(Exception):
        pass

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise Cancelled

    with pytest.raises(Cancelled):
        validate(config, ["big.jsonl"], roots=[tmp_path], hooks=ScanHooks(checkpoint=checkpoint))
    assert len(calls) == 3
