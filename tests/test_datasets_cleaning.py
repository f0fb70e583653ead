"""Reports a person can act on: warnings with their lines, no advice that cannot help, one
error with a mapping for columns no format knows (and the `columns` argument that applies it),
and invalid records dropped on request, never silently."""

import csv
import json
import re
from pathlib import Path

import pytest

from server.settings import load_settings
from tests.bench.bench_validate import record_path
from tests.support import isolated_env
from tests.test_datasets_validator import chat_line, only, validate, warning
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.kinds import WarningCode
from tools.errors import UserError


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
    assert "customer_msg -> prompt, agent_reply -> completion" in error.message
    assert 'columns={"customer_msg":"prompt","agent_reply":"completion"}' in error.fix
    assert WarningCode.EMPTY_VALIDATION not in {i.code for i in report.issues}


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            ["question", "answr", "is_good"],
            "question -> prompt, answr -> completion, is_good -> label",
        ),
        (["promt", "user_id", "reply"], "promt -> prompt, reply -> completion"),
        (
            ["id", "chosen_text", "rejected_text"],
            "chosen_text -> chosen, rejected_text -> rejected",
        ),
        (["body"], "body -> text"),
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
    assert "question -> prompt; no column looks like completion" in error.message


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
