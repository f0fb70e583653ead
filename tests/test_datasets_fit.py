"""The data must fit the template: judged on the datasets step against the template's method
(configs/datasets.yaml method_formats), with the two ways out named; for KTO, the balance of
desirable and undesirable examples against the weights. Both orders of the steps: the template
first, or the data first and the template after (judged again at once, or stale with why).

Unpaired data is written in the tests in TRL's documented layout (dataset_formats.md:
{"prompt", "completion", "label"}).
"""

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from server.settings import Settings
from tests.support import connect
from tests.test_datasets_validator import DATA, NO_HUB
from tests.test_package_mcp import MODEL_ID, call, package_settings, read_draft
from tools.dataset_validator.fit import TemplateFit
from tools.dataset_validator.kinds import ErrorCode, WarningCode
from tools.dataset_validator.results import ValidationReport
from tools.dataset_validator.roots import allowed_roots
from tools.dataset_validator.service import ValidationRequest, judge_again, validate_datasets
from tools.dataset_validator.sources import Sources
from tools.template_loader import apply_template

# The formats each method trains (configs/datasets.yaml method_formats), as errors name them.
DPO_DATA = "preference, sharegpt_preference, openai_preference"
KTO_DATA = "unpaired_preference, sharegpt_unpaired, chat_unpaired"


def fit(settings: Settings, template: str, **weights: float) -> TemplateFit:
    values = apply_template(settings.templates, template, weights).config
    return TemplateFit(
        template=template,
        method=str(values["method"]),
        templates_by_method=settings.templates.templates_by_method,
        desirable_weight=values.get("desirable_weight"),  # type: ignore[arg-type]
        undesirable_weight=values.get("undesirable_weight"),  # type: ignore[arg-type]
    )


def validate(
    settings: Settings,
    refs: list[str],
    template: TemplateFit | None,
    root: Path = DATA,
    **request: Any,
) -> ValidationReport:
    config = settings.datasets
    sources = Sources(config, allowed_roots([root]), NO_HUB, None)
    request = {"validation_split": 0, **request}
    return validate_datasets(
        ValidationRequest(datasets=refs, max_seq_length=1024, template=template, **request),
        config,
        sources,
        NO_HUB,
    )


def unpaired_file(path: Path, desirable: int, undesirable: int) -> Path:
    """KTO data as TRL documents it: a prompt, one completion, a boolean label."""
    rows = [
        {"prompt": f"Question {i}?", "completion": f"Answer {i}.", "label": i < desirable}
        for i in range(desirable + undesirable)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def errors(report: ValidationReport) -> list[Any]:
    return [issue for issue in report.issues if issue.severity == "error"]


# --- the format against the template ------------------------------------------------------------


def test_dpo_with_chat_data_names_the_template_the_format_and_the_sft_templates(
    settings: Settings,
) -> None:
    report = validate(settings, ["chat.jsonl"], fit(settings, "dpo"))
    assert not report.valid and report.template == "dpo"
    (error,) = errors(report)
    assert error.code == ErrorCode.FORMAT_VS_METHOD
    assert error.message == (
        f"The dpo template trains dpo on {DPO_DATA} data; chat.jsonl is chat data."
    )
    # chat is supervised data already: the way out is a template, nothing to convert
    assert error.fix == "Apply a template that trains chat data (lora, qlora, full)."


def test_sft_with_pairs_offers_dpo_or_the_chosen_answers(settings: Settings) -> None:
    (error,) = errors(validate(settings, ["preference.jsonl"], fit(settings, "lora")))
    assert error.message == (
        "The lora template trains sft on chat, sharegpt, alpaca, prompt_completion, text data; "
        "preference.jsonl is preference data."
    )
    assert error.fix == (
        "Either apply a template that trains preference data (dpo), or validate_datasets "
        'again with convert: "sft" to train the chosen answer of each pair as supervised data.'
    )


def test_sft_with_unpaired_data_offers_kto_or_the_desirable_answers(settings: Settings) -> None:
    (error,) = errors(validate(settings, ["unpaired_preference.jsonl"], fit(settings, "full")))
    assert "unpaired_preference.jsonl is unpaired_preference data" in error.message
    assert error.fix is not None
    assert error.fix.startswith(
        "Either apply a template that trains unpaired_preference data (kto)"
    )
    assert "the desirable (label true) answers as supervised data, leaving the others out" in (
        error.fix
    )


def test_kto_with_pairs_names_dpo_or_the_conversion_with_an_sft_template(
    settings: Settings,
) -> None:
    (error,) = errors(validate(settings, ["preference.jsonl"], fit(settings, "kto")))
    assert error.message.startswith(f"The kto template trains kto on {KTO_DATA} data")
    assert error.fix == (
        "Either apply a template that trains preference data (dpo), or validate_datasets again "
        'with convert: "sft" to train the chosen answer of each pair as supervised data, with '
        "an SFT template (lora, qlora, full)."
    )


@pytest.mark.parametrize(
    ("template", "dataset"),
    [
        ("lora", "chat.jsonl"),
        ("full", "alpaca.json"),
        ("dpo", "preference.jsonl"),
        ("kto", "unpaired_preference.jsonl"),
    ],
)
def test_data_that_fits_its_template_is_valid(
    settings: Settings, template: str, dataset: str
) -> None:
    report = validate(settings, [dataset], fit(settings, template))
    assert report.valid and report.issues == [], report.issues


def test_without_a_template_only_what_no_method_trains_is_an_error(settings: Settings) -> None:
    assert validate(settings, ["unpaired_preference.jsonl"], None).valid
    mixed = validate(settings, ["chat.jsonl", "unpaired_preference.jsonl"], None)
    assert [i.code for i in mixed.issues] == [ErrorCode.MIXED_FORMAT]
    assert "kto: unpaired_preference" in mixed.issues[0].message


# --- KTO: both labels, weighted into balance ----------------------------------------------------


def test_kto_counts_the_labels_of_the_training_records(settings: Settings) -> None:
    report = validate(settings, ["unpaired_preference.jsonl"], fit(settings, "kto"))
    (dataset,) = report.datasets
    assert dataset.labels is not None
    assert (dataset.labels.desirable, dataset.labels.undesirable) == (6, 6)
    held_out = validate(
        settings, ["unpaired_preference.jsonl"], fit(settings, "kto"), validation_split=0.25
    )
    labels = held_out.datasets[0].labels
    assert labels is not None and labels.desirable + labels.undesirable == (
        held_out.split.train_records
    )
    assert validate(settings, ["chat.jsonl"], None).datasets[0].labels is None


def test_an_imbalance_outside_the_band_names_the_weights_that_fix_it(
    settings: Settings, tmp_path: Path
) -> None:
    unpaired_file(tmp_path / "lopsided.jsonl", desirable=9, undesirable=3)
    report = validate(settings, ["lopsided.jsonl"], fit(settings, "kto"), tmp_path)
    assert report.valid  # a warning: the run trains, one label weighing more
    (warning,) = report.issues
    assert warning.code == WarningCode.LABEL_RATIO and warning.severity == "warning"
    assert warning.message == (
        "The weighted ratio of desirable to undesirable training examples is 3.00 "
        "(desirable_weight 1 x 9 / (undesirable_weight 1 x 3)), outside [1, 1.33] where the "
        "KTO paper (Eq. 8) balances the two labels."
    )
    # 1 x 3 / 9 = 0.333..., up to 4/3 of that; or 9 / 3 = 3 over 4/3 = 2.25, up to 3
    assert warning.fix == (
        "Set desirable_weight between 0.34 and 0.44 or undesirable_weight between 2.25 and 3 "
        "(one of the two) with apply_template."
    )
    weighted = validate(
        settings, ["lopsided.jsonl"], fit(settings, "kto", desirable_weight=0.4), tmp_path
    )
    assert weighted.valid and weighted.issues == []
    also = validate(
        settings, ["lopsided.jsonl"], fit(settings, "kto", undesirable_weight=2.5), tmp_path
    )
    assert also.issues == []


def test_data_of_one_label_gives_kto_nothing_to_contrast(
    settings: Settings, tmp_path: Path
) -> None:
    unpaired_file(tmp_path / "thumbs_up.jsonl", desirable=12, undesirable=0)
    report = validate(settings, ["thumbs_up.jsonl"], fit(settings, "kto"), tmp_path)
    (error,) = errors(report)
    assert error.code == ErrorCode.SINGLE_LABEL and not report.valid
    assert error.message.startswith("All 12 training examples are desirable (label true)")
    assert error.fix == (
        'Add answers labelled false, or train them with an SFT template (convert: "sft").'
    )
    # the same data judged for supervised training is no KTO matter
    assert not any(i.code == ErrorCode.SINGLE_LABEL for i in judged(settings, report, "lora"))


def judged(settings: Settings, report: ValidationReport, template: str | None) -> list[Any]:
    found = fit(settings, template) if template else None
    return judge_again(report, found, settings.datasets).issues


# --- judged again: the same report against another template -------------------------------------


def test_a_report_is_judged_again_without_reading_the_data(settings: Settings) -> None:
    report = validate(settings, ["chat.jsonl"], None, validation_split=0.01)
    assert report.valid and [i.code for i in report.issues] == [WarningCode.EMPTY_VALIDATION]
    dpo = judge_again(report, fit(settings, "dpo"), settings.datasets)
    assert not dpo.valid and dpo.template == "dpo"
    assert [i.code for i in dpo.issues] == [
        ErrorCode.FORMAT_VS_METHOD,
        WarningCode.EMPTY_VALIDATION,
    ]
    assert dpo.summary.endswith("not ready: fix the errors listed.")
    back = judge_again(dpo, fit(settings, "lora"), settings.datasets)
    assert back.valid and back.issues == report.issues and back.summary == report.summary


# --- both orders of the steps, through the tools ------------------------------------------------


async def start(client: Client) -> str:
    draft_id = (await call(client, "create_draft", {"title": "fit"}))["draft_id"]
    await call(client, "select_model", {"draft_id": draft_id, "model_id": MODEL_ID})
    return draft_id


async def steps(client: Client, draft_id: str) -> dict[str, dict[str, Any]]:
    seen = await call(client, "get_draft", {"draft_id": draft_id})
    return {line["step"]: line for line in seen["steps"]}


async def test_template_first_then_data_that_does_not_fit(tmp_path: Path) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await start(client)
        await call(client, "apply_template", {"draft_id": draft_id, "template": "dpo"})
        validated = await call(
            client, "validate_datasets", {"draft_id": draft_id, "datasets": ["chat.jsonl"]}
        )
        draft = await read_draft(client, draft_id)
    assert not validated["valid"]
    (issue,) = [i for i in validated["issues"] if i["severity"] == "error"]
    assert issue["message"] == (
        f"The dpo template trains dpo on {DPO_DATA} data; chat.jsonl is chat data."
    )
    assert draft["datasets"]["status"] == "invalid" and draft["config"]["status"] == "valid"
    assert any(i["code"] == "format_vs_method" for i in draft["datasets"]["issues"])


async def test_data_first_then_a_template_with_the_same_length_judges_it_at_once(
    tmp_path: Path,
) -> None:
    """Validated before any template (at the default max_seq_length 2048); kto at 2048 keeps
    every count true, so the data is judged again in the same call, and again when lora is
    applied after it."""
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await start(client)
        await call(client, "validate_datasets", {"draft_id": draft_id, "datasets": ["chat.jsonl"]})
        kto = await call(
            client,
            "apply_template",
            {"draft_id": draft_id, "template": "kto", "overrides": {"max_seq_length": 2048}},
        )
        after_kto = await steps(client, draft_id)
        lora = await call(
            client,
            "apply_template",
            {"draft_id": draft_id, "template": "lora", "keep_overrides": False},
        )
        after_lora = await steps(client, draft_id)
    assert kto["changes"] == [
        "datasets: judged against the kto template: The kto template trains kto on "
        f"{KTO_DATA} data; chat.jsonl is chat data."
    ]
    assert after_kto["datasets"]["status"] == "invalid"
    assert lora["changes"] == ["datasets: judged against the lora template: valid"]
    assert after_lora["datasets"]["status"] == "valid"


async def test_data_first_then_a_template_with_another_length_is_stale_with_why(
    tmp_path: Path,
) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await start(client)
        await call(client, "validate_datasets", {"draft_id": draft_id, "datasets": ["chat.jsonl"]})
        dpo = await call(client, "apply_template", {"draft_id": draft_id, "template": "dpo"})
        seen = await steps(client, draft_id)
    (told,) = dpo["changes"]
    reason = seen["datasets"]["reason"]
    assert seen["datasets"]["status"] == "stale" and told == f"datasets: stale ({reason})"
    assert reason == (
        "the config changed (max_seq_length None -> 1024, method None -> dpo, template None -> "
        f"dpo); The dpo template trains dpo on {DPO_DATA} data; chat.jsonl is chat data."
    )


async def test_new_kto_weights_judge_the_balance_again(tmp_path: Path) -> None:
    settings = package_settings(tmp_path)  # a copy of the test data in tmp_path/data
    unpaired_file(tmp_path / "data" / "lopsided.jsonl", desirable=9, undesirable=3)
    async with connect(settings) as client:
        draft_id = await start(client)
        await call(client, "apply_template", {"draft_id": draft_id, "template": "kto"})
        validated = await call(
            client,
            "validate_datasets",
            {"draft_id": draft_id, "datasets": ["lopsided.jsonl"], "validation_split": 0},
        )
        weighted = await call(
            client,
            "apply_template",
            {"draft_id": draft_id, "template": "kto", "overrides": {"desirable_weight": 0.4}},
        )
        draft = await read_draft(client, draft_id)
    assert validated["valid"]
    assert [i["code"] for i in validated["issues"]] == ["label_ratio"]
    assert weighted["changes"] == ["datasets: judged against the kto template: valid"]
    assert draft["datasets"]["status"] == "valid"
    assert not any(i["code"] == "label_ratio" for i in draft["datasets"]["issues"])
