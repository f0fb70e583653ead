"""Reports a person can act on: warnings with their lines, no advice that cannot help, one
error with a mapping for columns no format knows (and the `columns` argument that applies it),
and invalid records dropped on request, never silently."""

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.settings import Settings, load_settings
from tests.bench.bench_validate import record_path
from tests.support import isolated_env
from tests.test_datasets_validator import chat_line, only, validate, warning
from tests.test_package_builder import DATA, build, jsonl, make_inputs
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.kinds import WarningCode
from tools.errors import UserError
from tools.package_builder import PackageInputs, ValidatedDatasets
from tools.package_builder.config import MANIFEST_NAME
from tools.package_builder.data import DatasetChangedError


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("config"))).datasets


# --- line numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("lane", [True, False])
def test_warnings_about_records_give_their_lines(
    config: DatasetsConfig, tmp_path: Path, lane: bool
) -> None:
    """Blank lines shift lines away from record numbers; both reading paths say the same."""
    lines = [chat_line(f"Q{i}?", f"A{i}.") for i in range(12)]
    text = "".join(lines[:3]) + "\n\n" + "".join(lines[3:8]) + "   \n" + "".join(lines[8:])
    text += lines[4] + "\n" + lines[9]  # two repeats, after one more blank line
    (tmp_path / "gaps.jsonl").write_text(text)
    if lane:
        dataset = only(validate(config, ["gaps.jsonl"], roots=[tmp_path]))
    else:
        with record_path():
            dataset = only(validate(config, ["gaps.jsonl"], roots=[tmp_path]))
    blank = warning(dataset, WarningCode.BLANK_LINES)
    assert (blank.count, blank.records, blank.lines) == (4, [], [4, 5, 11, 17])
    assert "(lines 4, 5, 11, 17)" in blank.message
    repeated = warning(dataset, WarningCode.DUPLICATE)
    assert (repeated.records, repeated.lines) == ([13, 14], [16, 18])


def test_a_json_array_s_warnings_give_the_lines_its_records_start_on(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    records = [{"text": f"Record number {i}."} for i in range(12)] + [{"text": "Record number 3."}]
    (tmp_path / "pretty.json").write_text(json.dumps(records, indent=2))
    dataset = only(validate(config, ["pretty.json"], roots=[tmp_path]))
    repeated = warning(dataset, WarningCode.DUPLICATE)
    assert (repeated.records, repeated.lines) == ([13], [2 + 3 * 12])


def test_csv_warnings_count_the_header_line(config: DatasetsConfig, tmp_path: Path) -> None:
    rows = [f'"Question {i}?","Answer {i}."' for i in range(12)]
    rows.insert(5, "")
    rows.append('"Question 2?","Answer\n2."')  # a repeat on two lines, once whitespace goes
    (tmp_path / "rows.csv").write_text("prompt,completion\n" + "\n".join(rows) + "\n")
    dataset = only(validate(config, ["rows.csv"], roots=[tmp_path]))
    assert warning(dataset, WarningCode.BLANK_LINES).lines == [7]
    assert warning(dataset, WarningCode.DUPLICATE).lines == [15]


# --- the split warning --------------------------------------------------------------------------


def test_no_split_advice_when_nothing_is_valid(config: DatasetsConfig, tmp_path: Path) -> None:
    """Raising validation_split cannot help a dataset without one valid record."""
    (tmp_path / "broken.jsonl").write_text('{"messages": "not a list"}\n' * 12)
    report = validate(config, ["broken.jsonl"], roots=[tmp_path], validation_split=0.2)
    assert only(report).valid_records == 0
    assert WarningCode.EMPTY_VALIDATION not in {i.code for i in report.issues}
    assert not report.valid


# --- columns no format knows --------------------------------------------------------------------


def support_csv(path: Path, count: int = 12) -> Path:
    """A support-desk export: columns named as the team named them, not as any format does."""
    rows = [
        f'"T-{i}","How do I reset password {i}?","Open Settings, then Security ({i})."'
        for i in range(count)
    ]
    path.write_text("ticket_id,customer_msg,agent_reply\n" + "\n".join(rows) + "\n")
    return path


def test_columns_no_format_knows_get_one_error_with_the_closest_mapping(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    support_csv(tmp_path / "tickets.csv", 5)
    report = validate(config, ["tickets.csv"], roots=[tmp_path], validation_split=0.2)
    dataset = only(report)
    assert dataset.error_counts == {"unknown_columns": 1}  # not 5 x missing_field, no too_few
    (error,) = dataset.errors
    assert error.record is None
    assert "the columns are 'ticket_id', 'customer_msg', 'agent_reply'" in error.message
    assert "'customer_msg' -> prompt, 'agent_reply' -> completion" in error.message
    assert 'columns={"customer_msg":"prompt","agent_reply":"completion"}' in error.fix
    assert WarningCode.EMPTY_VALIDATION not in {i.code for i in report.issues}


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            ["question", "answr", "is_good"],
            "'question' -> prompt, 'answr' -> completion, 'is_good' -> label",
        ),
        (["promt", "user_id", "reply"], "'promt' -> prompt, 'reply' -> completion"),
        (
            ["id", "chosen_text", "rejected_text"],
            "'chosen_text' -> chosen, 'rejected_text' -> rejected",
        ),
        (["body"], "'body' -> text"),
    ],
)
def test_the_closest_mapping_uses_synonyms_and_similar_names(
    config: DatasetsConfig, tmp_path: Path, columns: list[str], expected: str
) -> None:
    record = {column: "true" if column == "is_good" else f"value of {column}" for column in columns}
    (tmp_path / "odd.jsonl").write_text(json.dumps(record) + "\n")
    (error,) = only(validate(config, ["odd.jsonl"], roots=[tmp_path])).errors
    assert f": {expected}." in error.message


def test_a_mapping_that_misses_a_field_says_which(config: DatasetsConfig, tmp_path: Path) -> None:
    (tmp_path / "half.jsonl").write_text(json.dumps({"question": "Why?", "notes": "n/a"}) + "\n")
    (error,) = only(validate(config, ["half.jsonl"], roots=[tmp_path])).errors
    assert "'question' -> prompt; no column looks like completion" in error.message


def test_records_without_a_format_among_others_stay_record_errors(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    lines = [chat_line(f"Q{i}?", f"A{i}.") for i in range(12)]
    lines.insert(4, json.dumps({"customer_msg": "Hi", "agent_reply": "Hello"}) + "\n")
    (tmp_path / "mostly_chat.jsonl").write_text("".join(lines))
    dataset = only(validate(config, ["mostly_chat.jsonl"], roots=[tmp_path]))
    assert dataset.error_counts == {"missing_field": 1}
    assert (dataset.errors[0].record, dataset.errors[0].line) == (5, 5)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json"])
def test_the_columns_argument_renames_fields_before_detection(
    config: DatasetsConfig, tmp_path: Path, suffix: str
) -> None:
    support_csv(tmp_path / "tickets.csv")
    if suffix != "csv":
        with (tmp_path / "tickets.csv").open() as file:
            rows = list(csv.DictReader(file))
        if suffix == "jsonl":
            text = "".join(json.dumps(row) + "\n" for row in rows)
        else:
            text = json.dumps({"tickets": rows}, indent=2)  # its only list of objects
        (tmp_path / f"tickets.{suffix}").write_text(text)
    mapping = {"customer_msg": "prompt", "agent_reply": "completion"}
    report = validate(
        config, [f"tickets.{suffix}"], roots=[tmp_path], validation_split=0, columns=mapping
    )
    dataset = only(report)
    assert report.valid and report.columns == mapping
    assert (dataset.format, dataset.records, dataset.valid_records) == ("prompt_completion", 12, 12)
    assert report.preview[0].turns[0].text == "How do I reset password 0?"


def test_a_mapping_onto_messages_is_read_record_by_record(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """The chat lane reads lines as they are, so it stands aside when columns are renamed."""
    lines = [
        json.dumps({"dialog": json.loads(chat_line(f"Q{i}?", f"A{i}."))["messages"]}) + "\n"
        for i in range(12)
    ]
    (tmp_path / "dialogs.jsonl").write_text("".join(lines))
    report = validate(config, ["dialogs.jsonl"], roots=[tmp_path], columns={"dialog": "messages"})
    assert report.valid and only(report).format == "chat"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"customer_msg": "question"}, "columns maps to 'question', which no format reads"),
        (
            {"customer_msg": "prompt", "ticket_id": "prompt"},
            "columns maps 'customer_msg', 'ticket_id' to the same field (prompt)",
        ),
        ({"": "prompt"}, "empty or longer than"),
        ({"ticket_id": "completion"}, "but a record has both"),  # agent_reply -> completion too
    ],
)
def test_a_mapping_that_cannot_apply_is_refused(
    config: DatasetsConfig, tmp_path: Path, columns: dict[str, str], message: str
) -> None:
    support_csv(tmp_path / "tickets.csv")
    if message.endswith("both"):
        (tmp_path / "tickets.csv").write_text(
            (tmp_path / "tickets.csv").read_text().replace("agent_reply", "completion")
        )
    with pytest.raises(UserError, match=re.escape(message)):
        validate(config, ["tickets.csv"], roots=[tmp_path], columns=columns)


# --- drop_invalid -------------------------------------------------------------------------------

DROPPED = {
    "invalid_json": 1,
    "not_an_object": 1,
    "missing_field": 1,
    "empty_content": 1,
    "unknown_role": 1,
    "no_assistant_turn": 1,
    "role_order": 1,
    "encoding_error": 1,
    "wrong_type": 1,
}
"""errors.jsonl: one record of each kind of problem, among 12 good ones."""


@pytest.mark.parametrize("lane", [True, False])
def test_drop_invalid_leaves_invalid_records_out_counted_by_code(
    config: DatasetsConfig, lane: bool
) -> None:
    strict = validate(config, ["errors.jsonl"], validation_split=0.25)
    if lane:
        report = validate(config, ["errors.jsonl"], validation_split=0.25, drop_invalid=True)
    else:
        with record_path():
            report = validate(config, ["errors.jsonl"], validation_split=0.25, drop_invalid=True)
    dataset = only(report)
    assert not strict.valid and strict.datasets[0].dropped == 0
    assert report.valid and dataset.valid and report.drop_invalid
    assert (dataset.records, dataset.valid_records, dataset.dropped) == (21, 12, 9)
    assert dataset.dropped_counts == DROPPED
    assert dataset.error_counts == strict.datasets[0].error_counts  # still every example
    assert all(e.dropped for e in dataset.errors)
    assert dataset.split.train + dataset.split.validation == 12
    assert dataset.split == strict.datasets[0].split  # the kept records, split as before
    assert "(9 invalid left out)" in report.summary


def test_records_are_counted_once_by_their_first_error(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    lines = [chat_line(f"Q{i}?", f"A{i}.") for i in range(12)]
    bad = {"messages": [{"role": "robot", "content": ""}, {"role": "user", "content": "  "}]}
    lines.append(json.dumps(bad) + "\n")  # unknown_role, then empty_content and more
    (tmp_path / "twice.jsonl").write_text("".join(lines))
    dataset = only(validate(config, ["twice.jsonl"], roots=[tmp_path], drop_invalid=True))
    assert dataset.valid and dataset.dropped == 1
    assert dataset.dropped_counts == {"unknown_role": 1}
    assert len(dataset.error_counts) > 1


def test_too_few_left_keeps_the_dataset_invalid(config: DatasetsConfig, tmp_path: Path) -> None:
    lines = [chat_line(f"Q{i}?", f"A{i}.") for i in range(9)] + ["{broken\n"] * 5
    (tmp_path / "few.jsonl").write_text("".join(lines))
    dataset = only(validate(config, ["few.jsonl"], roots=[tmp_path], drop_invalid=True))
    assert not dataset.valid and dataset.dropped == 5
    assert "too_few_records" in dataset.error_counts


@pytest.mark.parametrize(
    ("name", "text", "blocking"),
    [
        (
            "cut.json",
            "[" + ",".join(chat_line(f"Q{i}?", f"A{i}.") for i in range(12)) + ',{"messages": [',
            "unreadable_file",
        ),
        (
            "mixed.jsonl",
            "".join(chat_line(f"Q{i}?", f"A{i}.") for i in range(12))
            + json.dumps({"instruction": "Say hi.", "output": "Hi."})
            + "\n",
            "mixed_format",
        ),
        ("tickets.jsonl", json.dumps({"customer_msg": "Hi", "agent_reply": "Hello"}) + "\n", None),
    ],
)
def test_errors_of_the_whole_dataset_are_never_dropped(
    config: DatasetsConfig, tmp_path: Path, name: str, text: str, blocking: str | None
) -> None:
    if blocking is None:  # no record has a format: unknown_columns
        blocking, text = "unknown_columns", text * 12
    (tmp_path / name).write_text(text)
    dataset = only(validate(config, [name], roots=[tmp_path], drop_invalid=True))
    assert not dataset.valid and blocking in dataset.error_counts
    assert not any(e.dropped for e in dataset.errors if e.code == blocking)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A copy of the test datasets."""
    shutil.copytree(DATA, tmp_path / "datasets")
    return tmp_path / "datasets"


def dropping_inputs(settings: Settings, root: Path, **report_changes: Any) -> PackageInputs:
    """Package inputs for errors.jsonl, validated with drop_invalid (its report changed by
    `report_changes`, as a validation that dropped other records would have it)."""
    inputs = make_inputs(settings, root, ["chat.jsonl"])
    report = validate(settings.datasets, ["errors.jsonl"], roots=[root], drop_invalid=True)
    report.datasets[0] = report.datasets[0].model_copy(update=report_changes)
    recorded = ValidatedDatasets.model_validate(report.model_dump(mode="json"))
    return replace(inputs, datasets=recorded)


def test_the_package_leaves_out_the_records_the_validation_dropped(
    settings: Settings, data_root: Path
) -> None:
    inputs = dropping_inputs(settings, data_root)
    out = data_root.parent / "out" / "pkg"
    build(settings, data_root, inputs, out)
    manifest = yaml.safe_load((out / MANIFEST_NAME).read_text())
    (dataset,) = manifest["datasets"]
    assert (dataset["dropped"], dataset["dropped_counts"]) == (9, DROPPED)
    assert manifest["data"]["dropped"] == 9
    written = jsonl(out / manifest["data"]["train"]["path"])
    held_out = manifest["data"]["validation"]
    written += jsonl(out / held_out["path"]) if held_out else []
    assert len(written) == 12 == dataset["train_records"] + dataset["validation_records"]
    assert all(m["content"].strip() for r in written for m in r["messages"])
    readme = (out / "README.md").read_text()
    assert "errors.jsonl: 9 invalid records were left out, as asked (drop_invalid)" in readme
    assert "1 invalid_json, 1 not_an_object" in readme


def test_the_package_refuses_when_it_would_drop_other_records(
    settings: Settings, data_root: Path
) -> None:
    inputs = dropping_inputs(settings, data_root, dropped_counts={**DROPPED, "invalid_json": 2})
    with pytest.raises(DatasetChangedError, match="invalid records left out now: 1 empty_content"):
        build(settings, data_root, inputs, data_root.parent / "out" / "pkg")
    strict = dropping_inputs(settings, data_root)
    strict = replace(strict, datasets=strict.datasets.model_copy(update={"drop_invalid": False}))
    with pytest.raises(DatasetChangedError, match="record 2 is no longer a valid chat"):
        build(settings, data_root, strict, data_root.parent / "out" / "pkg")
