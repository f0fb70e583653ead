"""validate_datasets: every record of every dataset checked, in one streaming pass per file.

The run resolves the refs (downloading remote files first), hashes each file in a helper thread
while the scan reads it, scans the datasets in order (the validation dataset last, so overlap
with training is seen), and adds what only the whole run can tell: whether the data fits the
draft's template (fit.judge), the preview. judge_again judges a report against another template.
"""

import hashlib
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.dataset_validator.columns import checked_mapping
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.conversation import Turn
from tools.dataset_validator.fit import JUDGED, TemplateFit, judge
from tools.dataset_validator.formats import Example, FormatChecker
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.hygiene import Placeholders, RecordIndex, Splitter
from tools.dataset_validator.kinds import Conversion, WarningCode
from tools.dataset_validator.lanes import Lanes
from tools.dataset_validator.readers import DecompressionBudget
from tools.dataset_validator.results import (
    FIXES,
    DatasetReport,
    PreviewRecord,
    PreviewTurn,
    SplitReport,
    TokenizerInfo,
    ValidationReport,
)
from tools.dataset_validator.scan import DatasetScan, Progress, RunState, ScanHooks
from tools.dataset_validator.sources import ResolvedDataset, Sources
from tools.dataset_validator.stats import LengthStats
from tools.dataset_validator.tokens import token_counter
from tools.errors import UserError
from tools.issues import Issue
from tools.quoting import excerpt

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class ValidationRequest:
    datasets: list[str]
    max_seq_length: int
    validation_split: float | None = None
    validation_dataset: str | None = None
    model_id: str | None = None
    model_revision: str | None = None
    template: TemplateFit | None = None
    convert: Conversion | None = None
    columns: dict[str, str] | None = None
    """Top-level fields renamed in every record of every dataset before anything else."""
    drop_invalid: bool = False
    """Leave invalid records out (counted by code) rather than keep the step invalid."""
    drop_media: bool = False
    """Take images, audio and video out of the records instead of refusing them."""


def validate_datasets(
    request: ValidationRequest,
    config: DatasetsConfig,
    sources: Sources,
    hub: HubAccess,
    hooks: ScanHooks | None = None,
) -> ValidationReport:
    """Check every record; the report names each failing record and why. Data never raises,
    except all the datasets together decompressing past limits.max_decompressed_bytes_per_call
    (UserError): a file past its own limits is an error in its report."""
    hooks = hooks or ScanHooks()
    share = _validation_share(request, config)
    columns = checked_mapping(request.columns, config.limits.max_quoted_chars)
    counter = token_counter(request.model_id, request.model_revision, hub, config.tokens)
    with tempfile.TemporaryDirectory(prefix="training-package-datasets-") as workdir:
        resolved = [sources.resolve(ref, Path(workdir), hooks.checkpoint) for ref in _refs(request)]
        paths = [f.path for dataset in resolved for f in dataset.files]
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
            hashes = {path: hasher.submit(_sha256, path, stop) for path in paths}
            try:
                index = RecordIndex(config.split.seed)
                placeholders = Placeholders(config.warnings.placeholder_pattern)
                state = RunState(
                    config=config,
                    checker=FormatChecker(
                        config.formats,
                        config.limits.max_quoted_chars,
                        drop_media=request.drop_media,
                    ),
                    # the lanes read lines as they are and accept them unconverted: renamed
                    # columns and conversions go record by record
                    lanes=None
                    if columns or request.convert
                    else Lanes(config.formats, index, placeholders),
                    counter=counter,
                    index=index,
                    placeholders=placeholders,
                    max_seq_length=request.max_seq_length,
                    progress=Progress(
                        hooks,
                        sum(p.stat().st_size for p in paths),
                        config.reading.progress_interval_s,
                    ),
                    totals=LengthStats(config.limits.examples_per_error_code),
                    budget=DecompressionBudget(config.limits),
                    convert=request.convert,
                    columns=columns,
                    drop_invalid=request.drop_invalid,
                )
                reports = _scan_all(state, resolved, share, request, hashes)
            finally:
                stop.set()
                for future in hashes.values():
                    future.cancel()
    return _assemble(state, reports, share, request, counter.info)


def _refs(request: ValidationRequest) -> list[str]:
    refs = [r.strip() for r in request.datasets]
    return [*refs, request.validation_dataset.strip()] if request.validation_dataset else refs


def _validation_share(request: ValidationRequest, config: DatasetsConfig) -> float:
    """The share of training records held out for validation; checks the request's shape."""
    limits, split = config.limits, config.split
    count = len(request.datasets)
    if not limits.min_datasets <= count <= limits.max_datasets:
        raise UserError(
            f"Give between {limits.min_datasets} and {limits.max_datasets} datasets "
            f"(limits.min_datasets / max_datasets); {count} were given."
        )
    refs = [r.strip() for r in _refs(request)]
    repeated = sorted({r for r in refs if refs.count(r) > 1})
    if repeated:
        raise UserError(f"Each dataset may be given once; repeated: {', '.join(repeated)}.")
    if request.validation_dataset is not None:
        if request.validation_split is not None:
            raise UserError(
                "Give either validation_split or validation_dataset, not both: a separate "
                "validation dataset replaces the held-out share."
            )
        return 0.0
    share = request.validation_split
    if share is None:
        return split.default_validation_split
    if share == 0:
        return 0.0
    if not split.min_validation_split <= share <= split.max_validation_split:
        raise UserError(
            f"validation_split {share:g} is outside [{split.min_validation_split:g}, "
            f"{split.max_validation_split:g}]; use 0 for no validation set."
        )
    return share


def _scan_all(
    state: RunState,
    resolved: list[ResolvedDataset],
    share: float,
    request: ValidationRequest,
    hashes: dict[Path, Future[str]],
) -> list[DatasetReport]:
    splitter = Splitter(share)
    reports = []
    for position, dataset in enumerate(resolved):
        is_validation = request.validation_dataset is not None and position == len(resolved) - 1
        scan = DatasetScan(state, position, dataset, None if is_validation else splitter, hashes)
        reports.append(scan.run())
    return reports


def _sha256(path: Path, stop: threading.Event) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while not stop.is_set() and (chunk := file.read(HASH_CHUNK)):
            digest.update(chunk)
    return digest.hexdigest()


def _assemble(
    state: RunState,
    reports: list[DatasetReport],
    share: float,
    request: ValidationRequest,
    tokenizer: TokenizerInfo,
) -> ValidationReport:
    config = state.config
    issues = judge(reports, request.template, config) + _issues(reports, request, share)
    train = sum(r.split.train for r in reports)
    validation = sum(r.split.validation for r in reports)
    report = ValidationReport(
        datasets=reports,
        split=_split_report(request, config, share, train, validation),
        token_stats=state.totals.summary(),
        train_tokens=sum(r.train_tokens for r in reports),
        length_histogram=state.totals.buckets(config.tokens.length_histogram_bounds) or None,
        max_seq_length=request.max_seq_length,
        tokenizer=tokenizer,
        issues=issues,
        template=request.template.template if request.template else None,
        convert=request.convert,
        preview=[
            _preview(ref, number, ex, config.limits.preview_max_chars)
            for ref, number, ex in state.preview
        ],
        valid=False,
        summary="",
        columns=state.columns,
        drop_invalid=request.drop_invalid,
        drop_media=request.drop_media,
    )
    return _verdict(report)


def judge_again(
    report: ValidationReport, fit: TemplateFit | None, config: DatasetsConfig
) -> ValidationReport:
    """`report` judged against another template (or none): the same data, read no more."""
    kept = [issue for issue in report.issues if issue.code not in JUDGED]
    issues = judge(report.datasets, fit, config) + kept
    template = fit.template if fit else None
    return _verdict(report.model_copy(update={"issues": issues, "template": template}))


def _verdict(report: ValidationReport) -> ValidationReport:
    """`report` with `valid` and `summary` following from its datasets and issues."""
    datasets, split = report.datasets, report.split
    valid = all(d.valid for d in datasets) and not any(
        issue.severity == "error" for issue in report.issues
    )
    records = sum(d.records for d in datasets)
    usable = sum(d.valid_records for d in datasets)
    conversions = [d.converted for d in datasets if d.converted]
    converted = (
        f"; {sum(c.records for c in conversions):,} converted to {report.convert} data, "
        f"{sum(c.left_out for c in conversions):,} left out"
        if conversions
        else ""
    )
    dropped = sum(d.dropped for d in datasets)
    left_out = f" ({dropped:,} invalid left out)" if dropped else ""
    summary = (
        f"{usable:,} of {records:,} records valid in {len(datasets)} dataset(s){left_out}"
        f"{converted}; "
        f"{split.train_records:,} train / {split.validation_records:,} validation; "
        f"{report.train_tokens:,} train tokens"
        + ("." if valid else "; not ready: fix the errors listed.")
    )
    return report.model_copy(update={"valid": valid, "summary": summary})


def _split_report(
    request: ValidationRequest, config: DatasetsConfig, share: float, train: int, validation: int
) -> SplitReport:
    if request.validation_dataset:
        method, rule = "validation_dataset", "every record of validation_dataset is validation"
    elif share:
        method = "validation_split"
        rule = (
            "validation when the first 8 bytes (little-endian) of the record's XXH3-128 digest "
            f"(seeded with seed and its roles), as a fraction of 2**64, fall below {share:g}; "
            "identical records always fall on the same side"
        )
    else:
        method, rule = "none", "every record is training"
    return SplitReport(
        method=method,  # type: ignore[arg-type]
        validation_split=share if method == "validation_split" else None,
        validation_dataset=request.validation_dataset,
        seed=config.split.seed,
        train_records=train,
        validation_records=validation,
        rule=rule,
    )


def _issues(reports: list[DatasetReport], request: ValidationRequest, share: float) -> list[Issue]:
    """What no single dataset shows, besides the fit to the template: an empty validation set,
    a conversion asked for data it does not apply to."""
    issues = []
    validation = sum(r.split.validation for r in reports)
    usable = sum(r.valid_records for r in reports)  # none: raising the split would not help
    if (share or request.validation_dataset) and usable and not validation:
        issues.append(
            Issue(
                severity="warning",
                code=WarningCode.EMPTY_VALIDATION,
                message="No valid record landed in the validation set.",
                fix=FIXES[WarningCode.EMPTY_VALIDATION],
            )
        )
    unchanged = [r for r in reports if r.format is not None and r.converted is None]
    if request.convert and unchanged:
        held = ", ".join(f"{r.ref} ({r.format})" for r in unchanged)
        issues.append(
            Issue(
                severity="warning",
                code=WarningCode.NOTHING_CONVERTED,
                message=f'convert: "{request.convert}" changed nothing in {held}: it applies '
                "to preference pairs and labelled answers.",
                fix=FIXES[WarningCode.NOTHING_CONVERTED],
            )
        )
    return issues


def _preview(ref: str, number: int, example: Example, max_chars: int) -> PreviewRecord:
    """A record as labelled data, its turns as what a speaker in the file said (not chat
    messages the assistant could take as its own), each cut to `max_chars`."""

    def turns(sequence: list[Turn]) -> list[PreviewTurn]:
        return [
            PreviewTurn(speaker=str(role), text=excerpt(text, max_chars)) for role, text in sequence
        ]

    return PreviewRecord(
        dataset=ref,
        record=number,
        format=example.format,
        turns=turns(example.turns),
        rejected=turns(example.rejected) if example.rejected else None,
        label=example.label,
    )
