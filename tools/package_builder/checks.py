"""Whether the four steps make one package a trainer can run, before anything is written.

The configuration's own rules (configs/templates.yaml: max_seq_length within the model's
context, bf16 on the chosen GPU) run again when the template is re-applied, and the datasets step
was judged against the template (dataset_validator.fit); these checks add what only the whole
package shows: QLoRA on the chosen hardware, data that can train together, steps recorded
against an older version of another step, files that changed.
"""

from pathlib import Path

from tools.errors import UserError
from tools.issues import Issue
from tools.package_builder.inputs import PackageInputs, ValidatedDatasets
from tools.package_builder.shapes import package_shape
from tools.template_loader.issues import ConfigIssue


def error(code: str, message: str, fix: str) -> Issue:
    return Issue(severity="error", code=code, message=message, fix=fix)


def warning(code: str, message: str, fix: str | None = None) -> Issue:
    return Issue(severity="warning", code=code, message=message, fix=fix)


def check_package(inputs: PackageInputs) -> list[Issue]:
    """The problems found across the steps: errors stop the package, warnings need a yes."""
    issues = [_config_issue(issue) for issue in [*inputs.config.errors, *inputs.config.warnings]]
    issues += _hardware(inputs)
    issues += _data(inputs)
    return issues


def check_dataset_files(datasets: ValidatedDatasets) -> list[Issue]:
    """Local files that are gone or changed size since validation (their sha256 is compared
    when they are copied into the package; a size is cheap to compare first)."""
    issues = []
    for dataset in datasets.datasets:
        if dataset.source != "local":
            continue
        path = Path(dataset.location)
        try:
            size = path.stat().st_size
        except OSError:
            size = None
        if size != dataset.size_bytes:
            now = "is gone" if size is None else f"is {size:,} bytes, was {dataset.size_bytes:,}"
            issues.append(
                error(
                    "dataset_changed",
                    f"Dataset {dataset.ref} changed since it was validated: {path} {now}.",
                    "Call validate_datasets with the draft_id again, then finalize_package.",
                )
            )
    return issues


def raise_errors(issues: list[Issue]) -> None:
    """UserError listing every error with its fix, when there is any."""
    errors = [issue for issue in issues if issue.severity == "error"]
    if not errors:
        return
    lines = [
        f"{n}. {e.message}" + (f" Fix: {e.fix}" if e.fix else "") for n, e in enumerate(errors, 1)
    ]
    raise UserError(
        f"The package was not written: {len(errors)} problem(s) to fix first.\n" + "\n".join(lines)
    )


def _config_issue(issue: ConfigIssue) -> Issue:
    return Issue(severity=issue.severity, code=issue.code, message=issue.message, fix=issue.fix)


def _hardware(inputs: PackageInputs) -> list[Issue]:
    """QLoRA needs bitsandbytes, which runs on NVIDIA GPUs with CUDA: every GPU of the catalog
    (configs/deployment.yaml) is one; a GPU outside it cannot be vouched for."""
    deployment = inputs.deployment
    if inputs.config.config.get("load_in_4bit") is not True or deployment.gpu is not None:
        return []
    return [
        error(
            "qlora_unsupported_hardware",
            f"QLoRA loads the base model in 4-bit with bitsandbytes, which needs an NVIDIA GPU "
            f"with CUDA; {deployment.selected.target} has a {deployment.selected.gpu}, which is "
            "not in the GPU catalog.",
            "Select a Hugging Face flavor or a catalog GPU with estimate_deployment, or use the "
            "lora template.",
        )
    ]


def _data(inputs: PackageInputs) -> list[Issue]:
    datasets, config = inputs.datasets, inputs.config.config
    formats = [f for d in datasets.datasets if (f := d.trains_as) is not None]
    issues = []
    try:
        package_shape(formats)
    except UserError as exc:
        issues.append(error("datasets_incompatible", str(exc), "Validate datasets of one kind."))
    max_seq = config.get("max_seq_length")
    if isinstance(max_seq, int) and max_seq != datasets.max_seq_length:
        issues.append(
            warning(
                "datasets_length_checked_at_other_max",
                f"The datasets were checked against max_seq_length {datasets.max_seq_length}; "
                f"the configuration now has {max_seq}, so the too-long counts are out of date.",
                "Call validate_datasets with the draft_id again.",
            )
        )
    counted = datasets.tokenizer.model_id
    if datasets.tokenizer.kind == "model" and counted != inputs.model.model_id:
        issues.append(
            warning(
                "datasets_counted_with_other_model",
                f"The datasets' tokens were counted with {counted}'s tokenizer; the model is now "
                f"{inputs.model.model_id}.",
                "Call validate_datasets with the draft_id again.",
            )
        )
    return issues
