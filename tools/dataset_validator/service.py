"""validate_datasets: every record of every dataset checked, in one streaming pass per file.

The run resolves the refs (downloading remote files first), hashes each file in a helper thread
while the scan reads it, scans the datasets in order (the validation dataset last, so overlap
with training is seen), and adds what only the whole run can tell: formats that no single
training method accepts together, a format the draft's method cannot train on, the preview.
"""

import hashlib
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.conversation import Turn
from tools.dataset_validator.formats import Example, FormatChecker
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.hygiene import Placeholders, RecordIndex, Splitter
from tools.dataset_validator.kinds import ErrorCode, WarningCode
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
    method: str | None = None
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
                    lanes=Lanes(config.formats, index, placeholders),
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
    issues = _issues(reports, request, config, share)
    train = sum(r.split.train for r in reports)
    validation = sum(r.split.validation for r in reports)
    valid = all(r.valid for r in reports) and not any(i.severity == "error" for i in issues)
    records = sum(r.records for r in reports)
    usable = sum(r.valid_records for r in reports)
    train_tokens = sum(r.train_tokens for r in reports)
    summary = (
        f"{usable:,} of {records:,} records valid in {len(reports)} dataset(s); {train:,} train / "
        f"{validation:,} validation; {train_tokens:,} train tokens"
        + ("." if valid else "; not ready: fix the errors listed.")
    )
    return ValidationReport(
        datasets=reports,
        split=_split_report(request, config, share, train, validation),
        token_stats=state.totals.summary(),
        train_tokens=train_tokens,
        max_seq_length=request.max_seq_length,
        tokenizer=tokenizer,
        issues=issues,
        preview=[
            _preview(ref, number, ex, config.limits.preview_max_chars)
            for ref, number, ex in state.preview
        ],
        drop_media=request.drop_media,
        valid=valid,
        summary=summary,
    )


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


def _issues(
    reports: list[DatasetReport], request: ValidationRequest, config: DatasetsConfig, share: float
) -> list[Issue]:
    """What no single dataset shows: formats that do not train together, or not with the method."""
    issues = []
    formats = {r.format for r in reports if r.format is not None}
    methods = config.formats.method_formats
    untrainable = sorted(f for f in formats if not any(f in m for m in methods.values()))
    described = "; ".join(f"{m}: {', '.join(fs)}" for m, fs in methods.items())
    if untrainable:
        issues.append(
            Issue(
                severity="error",
                code=ErrorCode.FORMAT_VS_METHOD,
                message=f"No training method here trains {', '.join(untrainable)} data "
                f"({described}).",
                fix=FIXES[ErrorCode.FORMAT_VS_METHOD],
            )
        )
    elif formats and not any(formats <= set(accepted) for accepted in methods.values()):
        issues.append(
            Issue(
                severity="error",
                code=ErrorCode.MIXED_FORMAT,
                message=f"The datasets are {', '.join(sorted(formats))}; no training method "
                f"takes these together ({described}).",
                fix=FIXES[ErrorCode.MIXED_FORMAT],
            )
        )
    accepted = methods.get(request.method or "")
    if accepted is not None:
        wrong = sorted(f for f in formats if f not in accepted)
        if wrong:
            issues.append(
                Issue(
                    severity="error",
                    code=ErrorCode.FORMAT_VS_METHOD,
                    message=f"The draft's method is {request.method}, which trains on "
                    f"{', '.join(accepted)}; these datasets are {', '.join(wrong)}.",
                    fix=FIXES[ErrorCode.FORMAT_VS_METHOD],
                )
            )
    validation = sum(r.split.validation for r in reports)
    if (share or request.validation_dataset) and not validation:
        issues.append(
            Issue(
                severity="warning",
                code=WarningCode.EMPTY_VALIDATION,
                message="No valid record landed in the validation set.",
                fix=FIXES[WarningCode.EMPTY_VALIDATION],
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
