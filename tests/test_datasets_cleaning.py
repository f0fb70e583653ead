"""Reports a person can act on: warnings with their lines, no advice that cannot help, one
error with a mapping for columns no format knows (and the `columns` argument that applies it),
and invalid records dropped on request, never silently."""

import json
from pathlib import Path

import pytest

from server.settings import load_settings
from tests.bench.bench_validate import record_path
from tests.support import isolated_env
from tests.test_datasets_validator import chat_line, only, validate, warning
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.kinds import WarningCode


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
