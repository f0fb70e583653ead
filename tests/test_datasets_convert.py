"""convert: "sft", the way out for preference data under a supervised template, only when the user
asks: pairs train on their chosen answers, unpaired examples on their desirable ones (the others
counted as left out). The report, the draft, package.yaml, the package's data and README all say
so. Data is written in the tests in TRL's documented layouts (dataset_formats.md).
"""

import json
from pathlib import Path
from typing import Any

import yaml

from server.settings import Settings
from tests.support import connect
from tests.test_datasets_fit import errors, fit, unpaired_file, validate
from tests.test_package_mcp import MODEL_ID, call, package_settings
from tools.dataset_validator.kinds import ErrorCode, Format, WarningCode

# The formats each method trains (configs/datasets.yaml method_formats), as errors name them.
DPO_DATA = "preference, sharegpt_preference, openai_preference"


def test_pairs_train_on_their_chosen_answers(settings: Settings) -> None:
    pairs = validate(settings, ["preference.jsonl"], fit(settings, "lora"))
    converted = validate(settings, ["preference.jsonl"], fit(settings, "lora"), convert="sft")
    assert not pairs.valid and converted.valid and converted.issues == []
    assert converted.convert == "sft"
    (dataset,) = converted.datasets
    assert dataset.format == Format.PREFERENCE and dataset.trains_as == Format.PROMPT_COMPLETION
    assert dataset.converted is not None
    assert (dataset.converted.records, dataset.converted.left_out) == (12, 0)
    # what trains is the chosen side alone: fewer tokens than both answers of each pair
    assert 0 < converted.train_tokens < pairs.train_tokens
    assert all(p.rejected is None for p in converted.preview)
    assert "12 converted to sft data, 0 left out" in converted.summary


def test_conversational_pairs_train_as_conversations(settings: Settings) -> None:
    report = validate(
        settings, ["preference_conversational.jsonl"], fit(settings, "full"), convert="sft"
    )
    assert report.valid
    assert report.datasets[0].trains_as == Format.CHAT


def test_unpaired_data_trains_on_its_desirable_answers(settings: Settings, tmp_path: Path) -> None:
    unpaired_file(tmp_path / "feedback.jsonl", desirable=14, undesirable=6)
    report = validate(settings, ["feedback.jsonl"], fit(settings, "lora"), tmp_path, convert="sft")
    assert report.valid, report.issues
    (dataset,) = report.datasets
    assert dataset.converted is not None
    assert (dataset.converted.records, dataset.converted.left_out) == (14, 6)
    assert dataset.valid_records == 20 and dataset.split.train == 14
    assert dataset.labels is None  # nothing labelled is trained: no KTO balance to judge


def test_too_few_answers_left_is_an_error_that_says_why(settings: Settings) -> None:
    report = validate(settings, ["unpaired_preference.jsonl"], fit(settings, "lora"), convert="sft")
    (dataset,) = report.datasets
    assert dataset.error_counts == {ErrorCode.TOO_FEW_RECORDS: 1}
    assert dataset.errors[0].message.startswith(
        "6 valid records (6 undesirable left out by convert); at least 10 are needed"
    )


def test_a_conversion_that_changes_nothing_is_said(settings: Settings) -> None:
    report = validate(settings, ["chat.jsonl"], fit(settings, "lora"), convert="sft")
    assert report.valid and report.datasets[0].converted is None
    (warning,) = report.issues
    assert warning.code == WarningCode.NOTHING_CONVERTED
    assert warning.message == (
        'convert: "sft" changed nothing in chat.jsonl (chat): it applies to preference pairs and '
        "labelled answers."
    )


def test_converted_data_under_a_preference_template_names_both_ways_back(
    settings: Settings,
) -> None:
    report = validate(settings, ["preference.jsonl"], fit(settings, "dpo"), convert="sft")
    (error,) = errors(report)
    assert error.message == (
        f"The dpo template trains dpo on {DPO_DATA} data; preference.jsonl is prompt_completion "
        'data, converted from preference by convert: "sft".'
    )
    assert error.fix == (
        "Either apply a template that trains prompt_completion data (lora, qlora, full), or "
        'validate_datasets again with convert: "none" to train the preference data as it is (dpo).'
    )


# --- end to end: the draft and the package record the conversion -------------------------------


async def finalized_with_conversion(
    tmp_path: Path, dataset: str, write: Any = None
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """A lora draft whose data is converted, finalized, then given another max_seq_length:
    (validate_datasets' result, get_draft before and after the change, the package)."""
    settings = package_settings(tmp_path)
    if write is not None:
        write(tmp_path / "data")
    async with connect(settings) as client:
        draft_id = (await call(client, "create_draft", {"title": "converted"}))["draft_id"]
        await call(client, "select_model", {"draft_id": draft_id, "model_id": MODEL_ID})
        lora = {"draft_id": draft_id, "template": "lora", "overrides": {"max_seq_length": 256}}
        await call(client, "apply_template", lora)
        validated = await call(
            client,
            "validate_datasets",
            {
                "draft_id": draft_id,
                "datasets": [dataset],
                "validation_split": 0.2,
                "convert": "sft",
            },
        )
        await call(client, "estimate_deployment", {"draft_id": draft_id, "select": "a10g-small"})
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
        finalized = await call(client, "get_draft", {"draft_id": draft_id})
        await call(client, "apply_template", {**lora, "overrides": {"max_seq_length": 512}})
        changed = await call(client, "get_draft", {"draft_id": draft_id})
    return validated, {"finalized": finalized, "changed": changed}, Path(written["path"])


def records(package: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    data = manifest["data"]
    parts = [data["train"], data["validation"]] if data["validation"] else [data["train"]]
    lines = [line for part in parts for line in (package / part["path"]).read_text().splitlines()]
    return [json.loads(line) for line in lines]


def summary_of(seen: dict[str, Any], step: str) -> str:
    return next(line["summary"] for line in seen["steps"] if line["step"] == step)


async def test_converted_pairs_are_packaged_as_conversations(tmp_path: Path) -> None:
    validated, seen, package = await finalized_with_conversion(
        tmp_path, "preference_conversational.jsonl"
    )
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    (entry,) = manifest["datasets"]
    assert validated["valid"]
    assert entry["format"] == "preference"
    assert entry["converted"] == {"to": "sft", "records": 12, "left_out": 0, "trains_as": "chat"}
    assert manifest["data"]["shape"] == "messages"
    source = (tmp_path / "data" / "preference_conversational.jsonl").read_text().splitlines()
    chosen = [json.loads(line)["chosen"][0]["content"] for line in source]
    trained = records(package, manifest)
    assert sorted(r["messages"][-1]["content"] for r in trained) == sorted(chosen)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in trained)
    readme = (package / "README.md").read_text()
    assert (
        "- `preference_conversational.jsonl`: 12 preference examples train as chat data, their "
        'chosen or desirable answers (convert: "sft").'
    ) in readme
    # the draft keeps the choice: redoing the step repeats it
    assert "converted to sft" in summary_of(seen["finalized"], "datasets")
    assert seen["changed"]["next_action"].endswith(
        'datasets=["preference_conversational.jsonl"], convert="sft")'
    )


async def test_converted_feedback_is_packaged_without_its_undesirable_answers(
    tmp_path: Path,
) -> None:
    validated, _, package = await finalized_with_conversion(
        tmp_path,
        "feedback.jsonl",
        lambda root: unpaired_file(root / "feedback.jsonl", desirable=14, undesirable=6),
    )
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    (entry,) = manifest["datasets"]
    assert "14 converted to sft data, 6 left out" in validated["summary"]
    assert entry["converted"]["left_out"] == 6 and entry["converted"]["records"] == 14
    assert entry["train_records"] + entry["validation_records"] == 14
    trained = records(package, manifest)
    assert manifest["data"]["shape"] == "prompt_completion"
    assert len(trained) == 14 and all(set(r) == {"prompt", "completion"} for r in trained)
    assert {r["completion"] for r in trained} == {f"Answer {i}." for i in range(14)}
    assert "6 undesirable ones were left out" in (package / "README.md").read_text()


async def test_validating_again_keeps_the_conversion_until_the_user_clears_it(
    tmp_path: Path,
) -> None:
    """convert is a way of reading the data, like columns and drop_invalid: left out, the
    draft's choice holds (a step redone after a change repeats it); convert: "none" clears it,
    and the data is judged as it is."""
    async with connect(package_settings(tmp_path)) as client:
        draft_id = (await call(client, "create_draft", {"title": "converted"}))["draft_id"]
        await call(client, "select_model", {"draft_id": draft_id, "model_id": MODEL_ID})
        await call(client, "apply_template", {"draft_id": draft_id, "template": "lora"})
        validate = {"draft_id": draft_id, "datasets": ["preference.jsonl"]}
        first = await call(client, "validate_datasets", {**validate, "convert": "sft"})
        again = await call(client, "validate_datasets", validate)
        cleared = await call(client, "validate_datasets", {**validate, "convert": "none"})
        after = await call(client, "validate_datasets", validate)
    assert first["valid"] and first["convert"] == "sft"
    assert again["valid"] and again["convert"] == "sft"
    assert not cleared["valid"] and "convert" not in cleared
    (error,) = [i for i in cleared["issues"] if i["severity"] == "error"]
    assert error["code"] == ErrorCode.FORMAT_VS_METHOD
    assert not after["valid"] and "convert" not in after
