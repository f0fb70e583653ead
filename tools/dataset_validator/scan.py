"""Scan one dataset record by record: read, recognise, check, measure, split; one pass.

Memory stays flat apart from the 16-byte digest per record the duplicate checks keep: every
finding goes into bounded tallies (a count per code, the first few examples).
"""

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import numpy as np

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.formats import KNOWN_FIELDS, Example, FormatChecker, detect
from tools.dataset_validator.hygiene import Placeholders, RecordIndex, Sighting, Splitter
from tools.dataset_validator.kinds import ErrorCode, Format, WarningCode
from tools.dataset_validator.lane_batch import LaneBatch
from tools.dataset_validator.lanes import Lanes
from tools.dataset_validator.readers import (
    DecompressionBudget,
    LineBatch,
    ReadError,
    RecordReader,
    UnreadableFileError,
    file_type,
)
from tools.dataset_validator.results import (
    DatasetReport,
    DatasetWarning,
    DuplicateCounts,
    FileInfo,
    MediaDropped,
    RecordError,
    SplitCounts,
)
from tools.dataset_validator.sources import ResolvedDataset
from tools.dataset_validator.stats import LengthStats
from tools.dataset_validator.tallies import ErrorLog, WarningLog
from tools.dataset_validator.tokens import TokenCounter
from tools.quoting import quote, quote_list

ProgressFn = Callable[[int, int, str], None]


@dataclass
class ScanHooks:
    """How a scan reports progress and learns it should stop (checkpoint raises)."""

    checkpoint: Callable[[], None] = lambda: None
    progress: ProgressFn = lambda done, total, message: None


class Progress:
    """Bytes read across every file of a run, reported at most once per interval."""

    def __init__(self, hooks: ScanHooks, total_bytes: int, interval_s: float) -> None:
        self.hooks = hooks
        self.total = max(total_bytes, 1)
        self.done = 0
        self._interval = interval_s
        self._last = 0.0

    def report(self, in_file: int, message: str, *, force: bool = False) -> None:
        self.hooks.checkpoint()
        now = time.monotonic()
        if force or now - self._last >= self._interval:
            self._last = now
            self.hooks.progress(min(self.done + in_file, self.total), self.total, message)


@dataclass
class RunState:
    """What every dataset of one validation run shares."""

    config: DatasetsConfig
    checker: FormatChecker
    lanes: Lanes | None
    """The lanes for JSON Lines (chat, preference pairs); None sends every record the record
    path (the same report, slower: the tests and the benchmark compare the two)."""
    counter: TokenCounter
    index: RecordIndex
    placeholders: Placeholders
    max_seq_length: int
    progress: Progress
    totals: LengthStats
    budget: DecompressionBudget
    """What the run's files may decompress to, all together (and each, per reader)."""
    preview: list[tuple[str, int, Example]] = field(default_factory=list)


class DatasetScan:
    """One dataset's single pass; run() returns its report."""

    def __init__(
        self,
        state: RunState,
        position: int,
        dataset: ResolvedDataset,
        splitter: Splitter | None,
        hashes: dict[Path, Future[str]],
    ) -> None:
        """`splitter` None: every record is validation (the separate validation dataset).
        `hashes`: each file's sha256, computed alongside the scan."""
        self.state, self.position, self.dataset = state, position, dataset
        self._splitter = splitter
        self._hashes = hashes
        keep = state.config.limits.examples_per_error_code
        self.errors = ErrorLog(keep)
        self.warnings = WarningLog(keep)
        self.lengths = LengthStats(keep)
        self.formats: Counter[Format] = Counter()
        self.valid_by_format: Counter[Format] = Counter()
        self.first_of_format: dict[Format, list[RecordError]] = {}
        self.records = self.blank_lines = self.train_tokens = 0
        self.conversational = self.without_system = 0
        self.train_records = self.validation_records = 0
        self.duplicates_within = self.duplicates_across = self.overlap = 0
        self.media_records = 0
        self.media_parts: Counter[str] = Counter()
        self._pending: list[tuple[Example, int, bool]] = []
        self._sightings: list[tuple[bytes, int, bool]] = []  # (digest, record, validation)
        self._keep = keep
        self._preview_records = state.config.limits.preview_records
        self._batch_records = state.config.tokens.batch_records

    # --- the pass -------------------------------------------------------------------------

    def run(self) -> DatasetReport:
        config, files = self.state.config, []
        for item in self.dataset.files:
            kind = file_type(item.name)
            assert kind is not None  # sources hand over files of a known type only
            file_name = item.name if len(self.dataset.files) > 1 else None
            compressed = False
            try:
                with RecordReader(
                    item.path, kind, config.reading, config.limits.max_line_bytes, self.state.budget
                ) as reader:
                    compressed = reader.compressed
                    self._scan_file(reader, file_name)
            except UnreadableFileError as exc:  # or too large: FileTooLargeError
                self.errors.add(exc.code, f"{item.name}: {exc}", file=file_name)
            except OSError as exc:  # unreadable on disk; its strerror names no path
                reason = exc.strerror or type(exc).__name__
                self.errors.add(ErrorCode.UNREADABLE_FILE, f"{item.name}: {reason}", file=file_name)
            size = item.path.stat().st_size
            self.state.progress.done += size
            files.append(
                FileInfo(
                    name=item.name,
                    file_type=kind,
                    compressed=compressed,
                    size_bytes=size,
                    sha256=self._hashes[item.path].result(),
                )
            )
        self._flush()
        self.state.totals.merge(self.lengths)
        return self._report(files)

    def _scan_file(self, reader: RecordReader, file_name: str | None) -> None:
        progress, message = self.state.progress, f"reading {self.dataset.ref}"
        progress.report(0, message, force=True)
        try:
            if reader.holds_lines() and self.state.lanes is not None:
                read = self.state.lanes.read
                for batch in reader.line_batches():
                    self._scan_batch(batch, read(batch), file_name)
                    progress.report(reader.position(), f"{message}: {self.records:,} records")
            else:
                every = self.state.config.reading.check_every_records
                for _, line, value in reader.records():
                    self.records += 1
                    if not self.records % every:
                        progress.report(reader.position(), f"{message}: {self.records:,} records")
                    self._record(self.records, line, value, file_name)
        finally:
            self.blank_lines += reader.blank_lines
        progress.report(reader.size, f"{message}: {self.records:,} records", force=True)

    def _scan_batch(self, batch: LineBatch, lane: LaneBatch, file_name: str | None) -> None:
        """A batch of JSON Lines: the rows a lane took together, every other row record by
        record (`lane.others`), in file order wherever order matters."""
        items = batch.items
        self.records = batch.first + len(items) - 1
        passing = lane.rows
        splitter = self._splitter
        validation = (
            splitter.validation_mask(lane.digests)
            if splitter is not None
            else np.ones(len(passing), dtype=bool)
        )
        done = 0  # passing rows handled so far
        for item, value in [*lane.others, (len(items), None)]:
            upto = int(np.searchsorted(passing, item))
            if upto > done:
                self._accept_run(lane, batch, passing, validation, done, upto, file_name)
            done = upto
            if item < len(items):
                self._record(batch.first + item, items[item][0], value, file_name)
        if len(passing):
            self._measure_lane(lane, batch.first + passing, validation)
        self._flush()

    def _accept_run(
        self,
        lane: LaneBatch,
        batch: LineBatch,
        passing: np.ndarray,
        validation: np.ndarray,
        start: int,
        end: int,
        file_name: str | None,
    ) -> None:
        """What depends on file order for passing rows start..end: their place in the queue of
        sightings (duplicates, overlap), the first records of the format, the preview."""
        state, fmt = self.state, lane.format
        self._sightings.extend(
            zip(
                lane.digests[start:end],
                (batch.first + passing[start:end]).tolist(),
                validation[start:end].tolist(),
                strict=True,
            )
        )
        for position in range(start, min(end, start + self._keep - self.formats[fmt])):
            item = int(passing[position])
            self._first_of(fmt, batch.first + item, batch.items[item][0], file_name)
        self.formats[fmt] += end - start
        self.valid_by_format[fmt] += end - start
        for position in range(start, min(end, start + self._preview_records - len(state.preview))):
            number = batch.first + int(passing[position])
            state.preview.append((self.dataset.ref, number, lane.example(position)))

    def _measure_lane(self, lane: LaneBatch, numbers: np.ndarray, validation: np.ndarray) -> None:
        """What does not depend on order, for every passing row of a batch at once; a row's
        length is its longest sequence, and an epoch processes all of them."""
        state, warnings = self.state, self.warnings
        held_out = int(validation.sum())
        self.validation_records += held_out
        self.train_records += len(numbers) - held_out
        if lane.conversational:
            self.conversational += len(numbers)
            alone = numbers[~lane.has_system]
            self.without_system += len(alone)
            warnings.add_many(WarningCode.NO_SYSTEM_MESSAGE, alone.tolist())
        for position, found in lane.placeholders:
            warnings.add(WarningCode.PLACEHOLDER, int(numbers[position]), found)
        lengths = state.counter.measure_conversations(lane.conversations)
        per_row = lengths.reshape(len(numbers), lane.sequences)
        self._add_lengths(numbers, per_row.max(axis=1), per_row.sum(axis=1), validation)

    def _record(self, number: int, line: int | None, value: object, file_name: str | None) -> None:
        """One record, checked as its own format; every problem is worded."""
        errors = self.errors
        if type(value) is dict:
            fmt = detect(value)
            if fmt is None:
                keys = quote_list(value, self.state.config.limits.max_quoted_chars)
                errors.add(
                    ErrorCode.MISSING_FIELD,
                    f"no known field ({', '.join(KNOWN_FIELDS)}); the record has: {keys}",
                    record=number,
                    line=line,
                    file=file_name,
                )
                return
            self.formats[fmt] += 1
            if self.formats[fmt] <= self._keep:
                self._first_of(fmt, number, line, file_name)
            example, problems = self.state.checker.check(fmt, value)
            if example is not None:
                self.valid_by_format[fmt] += 1
                self._accept(example, number)
                return
            seen: set[ErrorCode] = set()
            for code, path, text in problems:
                if code not in seen:
                    seen.add(code)
                    errors.add(code, text, record=number, line=line, file=file_name, field=path)
        elif type(value) is ReadError:
            errors.add(value.code, value.message, record=number, line=line, file=file_name)
        else:
            errors.add(
                ErrorCode.NOT_AN_OBJECT,
                f"the record is a JSON {_json_kind(value)}, not an object",
                record=number,
                line=line,
                file=file_name,
            )

    def _first_of(self, fmt: Format, number: int, line: int | None, file: str | None) -> None:
        """Keep the first records of each format: the examples if it turns out a minority."""
        self.first_of_format.setdefault(fmt, []).append(
            RecordError(
                code=ErrorCode.MIXED_FORMAT,
                record=number,
                line=line,
                file=file,
                message=f"the record is {fmt}",
            )
        )

    def _accept(self, example: Example, number: int) -> None:
        """A record that passed its checks: de-duplicate, split, look for leftovers, measure."""
        state = self.state
        digest, text = state.index.digest(example)
        validation = self._splitter is None or self._splitter.is_validation(digest)
        self._sightings.append((digest, number, validation))
        if validation:
            self.validation_records += 1
        else:
            self.train_records += 1
        placeholder = state.placeholders.find(text)
        if placeholder is not None:
            self.warnings.add(WarningCode.PLACEHOLDER, number, placeholder)
        if example.untrained:
            self.warnings.add(WarningCode.UNTRAINED_TURNS, number)
        if example.media:
            self.media_records += 1
            self.media_parts.update(example.media)
            self.warnings.add(WarningCode.MEDIA_DROPPED, number)
        if example.conversational:
            self.conversational += 1
            if not example.has_system:
                self.without_system += 1
                self.warnings.add(WarningCode.NO_SYSTEM_MESSAGE, number)
        if len(state.preview) < self._preview_records:
            state.preview.append((self.dataset.ref, number, example))
        pending = self._pending
        pending.append((example, number, validation))
        if len(pending) >= self._batch_records:
            self._flush()

    def _repeated(self, first: Sighting, number: int, validation: bool) -> None:
        if first.dataset == self.position:
            self.duplicates_within += 1
            self.warnings.add(
                WarningCode.DUPLICATE, number, f"record {number} repeats record {first.record}"
            )
        else:
            self.duplicates_across += 1
            self.warnings.add(WarningCode.DUPLICATE_ACROSS_DATASETS, number)
        if first.validation != validation:
            self.overlap += 1
            self.warnings.add(WarningCode.TRAIN_VALIDATION_OVERLAP, number)

    def _flush(self) -> None:
        """Look the queued sightings up in the run's index, and measure the pending records'
        tokens: a batch at a time, for the index's and the tokenizer's sake."""
        if self._sightings:
            digests, numbers, sides = zip(*self._sightings, strict=True)
            for position, first in self.state.index.see_many(
                digests, self.position, np.array(sides), np.array(numbers)
            ):
                self._repeated(first, numbers[position], sides[position])
            self._sightings.clear()
        if not self._pending:
            return
        examples, numbers, sides = zip(*self._pending, strict=True)
        longest, processed = np.array(self.state.counter.measure(list(examples))).T
        self._add_lengths(np.array(numbers), longest, processed, np.array(sides))
        self._pending.clear()

    def _add_lengths(
        self, numbers: np.ndarray, longest: np.ndarray, processed: np.ndarray, sides: np.ndarray
    ) -> None:
        """Accepted records' token lengths (longest sequence, tokens an epoch processes, side):
        the statistics, the too-long warnings, the training tokens."""
        self.lengths.add_many(longest, numbers)
        too_long = np.flatnonzero(longest > self.state.max_seq_length)
        self.warnings.add_many(
            WarningCode.TOO_LONG,
            numbers[too_long].tolist(),
            [f"{length} tokens" for length in longest[too_long[: self._keep]].tolist()],
        )
        self.train_tokens += int(processed[~sides].sum())

    # --- the report -----------------------------------------------------------------------

    def _report(self, files: list[FileInfo]) -> DatasetReport:
        config = self.state.config
        fmt = max(self.formats, key=self.formats.__getitem__) if self.formats else None
        for other, count in self.formats.items():
            if other is not fmt:
                examples = [
                    e.model_copy(update={"message": f"{e.message}; most records are {fmt}"})
                    for e in self.first_of_format[other]
                ]
                self.errors.add_counted(ErrorCode.MIXED_FORMAT, count, examples)
        valid_records = self.valid_by_format[fmt] if fmt else 0
        if not self.records and not self.errors.total:
            self.errors.add(ErrorCode.EMPTY_DATASET, f"{self.dataset.ref} holds no records")
        elif valid_records < config.limits.min_records_per_dataset:
            self.errors.add(
                ErrorCode.TOO_FEW_RECORDS,
                f"{valid_records} valid records; at least {config.limits.min_records_per_dataset}"
                " are needed (limits.min_records_per_dataset)",
            )
        return DatasetReport(
            ref=self.dataset.ref,
            source=self.dataset.source,
            role="train" if self._splitter is not None else "validation",
            location=self.dataset.location,
            format=fmt,
            format_counts={str(k): v for k, v in self.formats.items()},
            records=self.records,
            valid_records=valid_records,
            blank_lines=self.blank_lines,
            size_bytes=sum(f.size_bytes for f in files),
            sha256=files[0].sha256 if len(files) == 1 else _combined(files),
            files=files,
            errors=self.errors.examples(),
            error_counts={str(k): v for k, v in self.errors.counts.items()},
            warnings=self._warnings(),
            token_stats=self.lengths.summary(),
            train_tokens=self.train_tokens,
            duplicates=DuplicateCounts(
                within=self.duplicates_within,
                across_datasets=self.duplicates_across,
                train_validation_overlap=self.overlap,
            ),
            split=SplitCounts(train=self.train_records, validation=self.validation_records),
            media_dropped=self._media_dropped(),
            valid=self.errors.total == 0,
        )

    def _media_dropped(self) -> MediaDropped | None:
        if not self.media_records:
            return None
        return MediaDropped(records=self.media_records, parts=dict(self.media_parts))

    def _warnings(self) -> list[DatasetWarning]:
        config, log, found = self.state.config, self.warnings, []
        counts = log.counts
        if counts[WarningCode.DUPLICATE]:
            found.append(
                log.warning(
                    WarningCode.DUPLICATE,
                    f"{counts[WarningCode.DUPLICATE]} records repeat an earlier record once "
                    f"whitespace is ignored (e.g. {log.first_detail(WarningCode.DUPLICATE)})",
                )
            )
        if counts[WarningCode.DUPLICATE_ACROSS_DATASETS]:
            found.append(
                log.warning(
                    WarningCode.DUPLICATE_ACROSS_DATASETS,
                    f"{counts[WarningCode.DUPLICATE_ACROSS_DATASETS]} records also appear in an "
                    "earlier dataset of this validation",
                )
            )
        if counts[WarningCode.TRAIN_VALIDATION_OVERLAP]:
            found.append(
                log.warning(
                    WarningCode.TRAIN_VALIDATION_OVERLAP,
                    f"{counts[WarningCode.TRAIN_VALIDATION_OVERLAP]} records are in both the "
                    "training and the validation set",
                )
            )
        if counts[WarningCode.TOO_LONG]:
            found.append(
                log.warning(
                    WarningCode.TOO_LONG,
                    f"{counts[WarningCode.TOO_LONG]} records are longer than max_seq_length "
                    f"({self.state.max_seq_length} tokens), e.g. "
                    f"{log.first_detail(WarningCode.TOO_LONG)}",
                )
            )
        if counts[WarningCode.PLACEHOLDER]:
            placeholder = quote(
                log.first_detail(WarningCode.PLACEHOLDER), config.limits.max_quoted_chars
            )
            found.append(
                log.warning(
                    WarningCode.PLACEHOLDER,
                    f"{counts[WarningCode.PLACEHOLDER]} records hold template placeholders such "
                    f"as {placeholder}",
                )
            )
        zscore = config.warnings.length_outlier_zscore
        outliers, examples, low, high = self.lengths.outliers(zscore)
        if outliers:
            found.append(
                log.warning(
                    WarningCode.LENGTH_OUTLIER,
                    f"{outliers} records are more than {zscore:g} standard deviations from the "
                    f"mean length (outside {max(low, 0):.0f}-{high:.0f} tokens)",
                    count=outliers,
                    records=examples,
                )
            )
        share = self.without_system / self.conversational if self.conversational else 0.0
        if share > config.warnings.max_share_without_system:
            found.append(
                log.warning(
                    WarningCode.NO_SYSTEM_MESSAGE,
                    f"{share:.0%} of the conversations ({self.without_system} of "
                    f"{self.conversational}) have no system message",
                )
            )
        if counts[WarningCode.UNTRAINED_TURNS]:
            found.append(
                log.warning(
                    WarningCode.UNTRAINED_TURNS,
                    f"{counts[WarningCode.UNTRAINED_TURNS]} records mark assistant turns not to "
                    "be trained on (weight or loss_weight 0); the packaged trainer learns them too",
                )
            )
        dropped = self._media_dropped()
        if dropped is not None:
            found.append(
                log.warning(
                    WarningCode.MEDIA_DROPPED,
                    f"media removed from {dropped.records:,} records as asked (drop_media): "
                    f"{dropped.summary()}; they train on their text alone",
                )
            )
        if self.blank_lines:
            found.append(
                log.warning(
                    WarningCode.BLANK_LINES,
                    f"{self.blank_lines} blank lines were skipped",
                    count=self.blank_lines,
                    records=[],
                )
            )
        return found


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "boolean" if isinstance(value, bool) else "number"


def _combined(files: list[FileInfo]) -> str:
    """One digest for a dataset of several files: sha256 over their names and digests."""
    joined = "\n".join(f"{f.sha256}  {f.name}" for f in files)
    return sha256(joined.encode()).hexdigest()
