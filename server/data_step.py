"""The datasets step and the draft's config: what the data is read and judged against, how a
report is recorded, and judging it again when only the template changed.

A report depends on the config in two ways: its too-long counts on max_seq_length (the files
must be read again when it changes) and its verdict on the template (the method, the KTO
weights), which the report alone can be judged against again, at once.
"""

from typing import Any

from pydantic import ValidationError

from server.drafts import DraftPackage, StepSection, StepStatus
from server.drafts.graph import WEIGHT_KEYS
from server.settings import Settings
from tools import dataset_validator
from tools.dataset_validator import TemplateFit, ValidationReport
from tools.issues import Issue
from tools.template_loader import TemplatesConfig

MAX_SEQ_KEY = "max_seq_length"


def recorded_config(draft: DraftPackage | None) -> dict[str, Any]:
    """The draft's config values (empty before a template is applied)."""
    config = draft.config.payload.get("config") if draft else None
    return config if isinstance(config, dict) else {}


def max_seq_length(draft: DraftPackage | None, settings: Settings) -> int:
    """The length records are measured against: the config's, else the configured default."""
    value = recorded_config(draft).get(MAX_SEQ_KEY)
    if isinstance(value, int) and value > 0:
        return value
    return settings.datasets.tokens.default_max_seq_length


def template_fit(draft: DraftPackage | None, templates: TemplatesConfig) -> TemplateFit | None:
    """The template the draft's data is judged against; None before one is applied."""
    template = draft.config.payload.get("template") if draft else None
    method = recorded_config(draft).get("method")
    if not isinstance(template, str) or not isinstance(method, str):
        return None
    weights = [recorded_config(draft).get(key) for key in WEIGHT_KEYS]
    desirable, undesirable = (w if isinstance(w, int | float) else None for w in weights)
    return TemplateFit(
        template=template,
        method=method,
        templates_by_method=templates.templates_by_method,
        desirable_weight=desirable,
        undesirable_weight=undesirable,
    )


def datasets_section(report: ValidationReport) -> StepSection:
    """validate_datasets' report as the draft's datasets step (its preview left out): each
    error code once, as an error, or as a warning where its records were dropped
    (drop_invalid), which finalize_package asks the user to accept."""
    issues: list[Issue] = []
    for dataset in report.datasets:
        for code, count in dataset.error_counts.items():
            first = next(e for e in dataset.errors if e.code == code)
            where = "".join(
                f" {label} {value}"
                for label, value in (("record", first.record), ("line", first.line))
                if value is not None
            )
            dropped = " in records left out" if first.dropped else ""
            issues.append(
                Issue(
                    severity="warning" if first.dropped else "error",
                    code=code,
                    message=f"{dataset.ref}: {count} x {code}{dropped} (first at"
                    f"{where or ' dataset'}: {first.message})",
                    fix=first.fix,
                )
            )
        issues += [
            Issue(severity="warning", code=w.code, message=f"{dataset.ref}: {w.message}", fix=w.fix)
            for w in dataset.warnings
        ]
    issues += [
        Issue(severity=i.severity, code=i.code, message=i.message, fix=i.fix) for i in report.issues
    ]
    payload: dict[str, Any] = report.model_dump(mode="json", exclude={"preview"})
    return StepSection(
        status=StepStatus.VALID if report.valid else StepStatus.INVALID,
        payload=payload,
        issues=issues,
    )


def judged_again(draft: DraftPackage, settings: Settings) -> ValidationReport | None:
    """The draft's datasets report judged against its current template; None when it was
    recorded in a form this server no longer reads."""
    try:
        report = ValidationReport.model_validate(draft.datasets.payload)
    except ValidationError:
        return None
    fit = template_fit(draft, settings.templates)
    return dataset_validator.judge_again(report, fit, settings.datasets)


def rejudge(draft: DraftPackage, settings: Settings) -> tuple[StepSection | None, str]:
    """The datasets step judged again against the draft's template, and what came of it ("" if
    the verdict stayed as it was); (None, "") when that takes reading the files again: the
    records were measured against another max_seq_length."""
    report = judged_again(draft, settings)
    if report is None or report.max_seq_length != max_seq_length(draft, settings):
        return None, ""
    section, before = datasets_section(report), draft.datasets
    if (section.status, section.issues) == (before.status, before.issues):
        return section, ""
    errors = [issue.message for issue in report.issues if issue.severity == "error"]
    outcome = "valid" if report.valid else (errors[0] if errors else "invalid")
    return section, f"judged against the {report.template} template: {outcome}"


def fit_problem(draft: DraftPackage, settings: Settings) -> str | None:
    """Why the recorded data does not fit the draft's template, as far as the report tells:
    part of the reason of a datasets step that has to be read again anyway."""
    report = judged_again(draft, settings)
    errors = [i.message for i in report.issues if i.severity == "error"] if report else []
    return errors[0] if errors else None
