"""Scan one dataset record by record: read, recognise, check, measure, split; one pass.

Memory stays flat apart from the 16-byte digest per record the duplicate checks keep (and,
where records do not start on consecutive lines, up to 16 bytes per record of where they do:
LineMap): every finding goes into bounded tallies (a count per code, the first few examples).
"""

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import numpy as np

from tools.dataset_validator.columns import unknown_columns
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.convert import converted, sft_format, to_sft
from tools.dataset_validator.formats import Example, FormatChecker
from tools.dataset_validator.hygiene import Placeholders, RecordIndex, Sighting, Splitter
from tools.dataset_validator.kinds import Conversion, ErrorCode, Format, WarningCode
from tools.dataset_validator.lane_batch import LaneBatch
from tools.dataset_validator.lanes import Lanes
from tools.dataset_validator.lines import LineMap
from tools.dataset_validator.readers import (
    DecompressionBudget,
    LineBatch,
    RecordReader,
    UnreadableFileError,
    file_type,
)
from tools.dataset_validator.results import (
    FIXES,
    ConversionReport,
    DatasetReport,
    DatasetWarning,
    DuplicateCounts,
    FileInfo,
    LabelCounts,
    MediaDropped,
    RecordError,
    SplitCounts,
)
from tools.dataset_validator.sources import ResolvedDataset
from tools.dataset_validator.stats import LengthStats
from tools.dataset_validator.tallies import ErrorLog, WarningLog
from tools.dataset_validator.tokens import TokenCounter
from tools.dataset_validator.verdicts import judge
from tools.quoting import quote

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
    convert: Conversion | None = None
    """Preference examples become supervised ones (convert.to_sft) before anything is counted."""
    columns: dict[str, str] = field(default_factory=dict)
    """Top-level fields renamed as records are read (validate_datasets' `columns`)."""
    drop_invalid: bool = False
    """Invalid records are left out, counted, instead of keeping a dataset invalid."""
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
        self.labels: Counter[bool] = Counter()  # training records of labelled data, by label
        self.converted: Counter[Format] = Counter()  # converted examples, by what they became
        self.left_out = 0  # undesirable examples a conversion left out
        self.first_of_format: dict[Format, list[RecordError]] = {}
        self.records = self.blank_lines = self.train_tokens = 0
        self.blank_line_numbers: list[int] = []
        self.lines = LineMap()
        self.conversational = self.without_system = 0
        self.train_records = self.validation_records = 0
        self.duplicates_within = self.duplicates_across = self.overlap = 0
        self.media_records = 0
        self.media_parts: Counter[str] = Counter()
        self._pending: list[tuple[Example, int, bool]] = []
        self._sightings: list[tuple[bytes, int, bool]] = []  # (digest, record, validation)
        self._columns_seen: list[str] | None = None  # of the first record no format knows
        self.dropped: Counter[ErrorCode] = Counter()  # records, by their first error's code
        self._record_errors: Counter[ErrorCode] = Counter()  # errors that name one record
        self._quoted = state.config.limits.max_quoted_chars
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
            compressed, records_key = False, None
            try:
                with RecordReader(
                    item.path,
                    kind,
                    config.reading,
                    config.limits.max_line_bytes,
                    self.state.budget,
                    self.state.columns,
                ) as reader:
                    compressed = reader.compressed
                    try:
                        self._scan_file(reader, file_name)
                    finally:
                        records_key = reader.records_key
            except UnreadableFileError as exc:  # or too large, or malformed
                self.errors.add(exc.code, f"{item.name}: {exc}", file=file_name, fix=exc.fix)
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
                    records_key=records_key,
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
                read, before = self.state.lanes.read, self.records
                for batch in reader.line_batches():
                    self._scan_batch(batch, read(batch), file_name, before + batch.first)
                    progress.report(reader.position(), f"{message}: {self.records:,} records")
            else:
                every = self.state.config.reading.check_every_records
                note = self.lines.note
                for _, line, value in reader.records():
                    self.records += 1
                    if not self.records % every:
                        progress.report(reader.position(), f"{message}: {self.records:,} records")
                    if line is not None:
                        note(self.records, line)
                    self._record(self.records, line, value, file_name)
        finally:
            self.blank_lines += reader.blank_lines
            self.blank_line_numbers += reader.blank_line_numbers
        progress.report(reader.size, f"{message}: {self.records:,} records", force=True)

    def _scan_batch(
        self, batch: LineBatch, lane: LaneBatch, file_name: str | None, first: int
    ) -> None:
        """A batch of JSON Lines whose first record is the dataset's record `first`: the rows a
        lane took together, every other row record by record (`lane.others`), in file order
        wherever order matters."""
        items = batch.items
        self.records = first + len(items) - 1
        self.lines.note_many(first, [line for line, _ in items])
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
                self._accept_run(lane, batch, first, passing, validation, done, upto, file_name)
            done = upto
            if item < len(items):
                self._record(first + item, items[item][0], value, file_name)
        if len(passing):
            self._measure_lane(lane, first + passing, validation)
        self._flush()

    def _accept_run(
        self,
        lane: LaneBatch,
        batch: LineBatch,
        first: int,
        passing: np.ndarray,
        validation: np.ndarray,
        start: int,
        end: int,
        file_name: str | None,
    ) -> None:
        """What depends on file order for passing rows start..end (the batch's first record
        is the dataset's record `first`): their place in the queue of sightings (duplicates,
        overlap), the first records of the format, the preview."""
        state, fmt = self.state, lane.format
        self._sightings.extend(
            zip(
                lane.digests[start:end],
                (first + passing[start:end]).tolist(),
                validation[start:end].tolist(),
                strict=True,
            )
        )
        for position in range(start, min(end, start + self._keep - self.formats[fmt])):
            item = int(passing[position])
            self._first_of(fmt, first + item, batch.items[item][0], file_name)
        self.formats[fmt] += end - start
        self.valid_by_format[fmt] += end - start
        for position in range(start, min(end, start + self._preview_records - len(state.preview))):
            number = first + int(passing[position])
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
        """One record, checked as its own format; every problem is worded. A rejected record
        is dropped (drop_invalid) or keeps the dataset invalid."""
        fmt, example, problems = judge(value, self.state.checker, self._quoted)
        if fmt is not None:
            self.formats[fmt] += 1
            if self.formats[fmt] <= self._keep:
                self._first_of(fmt, number, line, file_name)
            if example is not None:
                self.valid_by_format[fmt] += 1
                self._accept(example, number)
                return
        elif self._columns_seen is None and type(value) is dict:
            self._columns_seen = list(value)
        drop = self.state.drop_invalid
        if drop:
            self.dropped[problems[0][0]] += 1
        for code, path, text in problems:
            self._record_errors[code] += 1
            self.errors.add(
                code, text, record=number, line=line, file=file_name, field=path, dropped=drop
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
                fix=FIXES[ErrorCode.MIXED_FORMAT],
            )
        )

    def _accept(self, example: Example, number: int) -> None:
        """A record that passed its checks: converted when asked, then de-duplicated, split,
        looked at for leftovers, measured."""
        state = self.state
        if state.convert is not None and converted(example):
            supervised = to_sft(example)
            if supervised is None:
                self.left_out += 1
                return
            example = supervised
            self.converted[sft_format(example)] += 1
        digest, text = state.index.digest(example)
        validation = self._splitter is None or self._splitter.is_validation(digest)
        self._sightings.append((digest, number, validation))
        if validation:
            self.validation_records += 1
        else:
            self.train_records += 1
            if example.label is not None:
                self.labels[example.label] += 1
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
        usable = valid_records - self.left_out
        if not self.records and not self.errors.total:
            self.errors.add(ErrorCode.EMPTY_DATASET, f"{self.dataset.ref} holds no records")
        elif fmt is None and self._columns_seen is not None:
            self._unknown_columns(self._columns_seen)
        elif usable < config.limits.min_records_per_dataset and self.records:
            kept = f" ({self.left_out} undesirable left out by convert)" if self.left_out else ""
            self.errors.add(
                ErrorCode.TOO_FEW_RECORDS,
                f"{usable} valid records{kept}; at least "
                f"{config.limits.min_records_per_dataset} are needed "
                "(limits.min_records_per_dataset)",
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
            labels=LabelCounts(desirable=self.labels[True], undesirable=self.labels[False])
            if self.labels
            else None,
            converted=self._conversion(),
            media_dropped=self._media_dropped(),
            valid=self.errors.total == self._droppable(),
            dropped=sum(self.dropped.values()),
            dropped_counts={str(k): v for k, v in self.dropped.items()},
        )

    def _conversion(self) -> ConversionReport | None:
        if self.state.convert is None or not (self.converted or self.left_out):
            return None
        common = self.converted.most_common(1)
        return ConversionReport(
            to=self.state.convert,
            records=self.converted.total(),
            left_out=self.left_out,
            trains_as=common[0][0] if common else None,
        )

    def _droppable(self) -> int:
        """How many of the errors drop_invalid leaves behind (those of one record each)."""
        return sum(self._record_errors.values()) if self.state.drop_invalid else 0

    def _unknown_columns(self, columns: list[str]) -> None:
        """No record has a format: one error with the columns and their closest mapping onto
        a format, instead of one per record."""
        self.errors.discard(ErrorCode.MISSING_FIELD)
        self._record_errors.pop(ErrorCode.MISSING_FIELD, None)
        self.dropped.pop(ErrorCode.MISSING_FIELD, None)
        config = self.state.config
        message, fix = unknown_columns(columns, config.columns, config.limits.max_quoted_chars)
        self.errors.add(ErrorCode.UNKNOWN_COLUMNS, message, fix=fix)

    def _media_dropped(self) -> MediaDropped | None:
        if not self.media_records:
            return None
        return MediaDropped(records=self.media_records, parts=dict(self.media_parts))

    def _warnings(self) -> list[DatasetWarning]:
        """The warnings, with the lines of their records when the dataset is one file."""
        one_file = len(self.dataset.files) == 1
        found = self._record_warnings()
        if one_file:
            for warning in found:
                warning.lines = self.lines.lines(warning.records)
        if self.blank_lines:
            blank = f"{self.blank_lines} blank lines were skipped"
            found.append(
                self.warnings.warning(
                    WarningCode.BLANK_LINES,
                    f"{blank} (lines {', '.join(map(str, self.blank_line_numbers))}"
                    f"{', ...' if self.blank_lines > len(self.blank_line_numbers) else ''})"
                    if one_file
                    else blank,
                    count=self.blank_lines,
                    records=[],
                    lines=self.blank_line_numbers if one_file else [],
                )
            )
        return found

    def _record_warnings(self) -> list[DatasetWarning]:
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
        return found


def _combined(files: list[FileInfo]) -> str:
    """One digest for a dataset of several files: sha256 over their names and digests."""
    joined = "\n".join(f"{f.sha256}  {f.name}" for f in files)
    return sha256(joined.encode()).hexdigest()
