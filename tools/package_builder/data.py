"""Put the validated datasets into the package: their files as they were, and the records in the
layout TRL reads, split into training and validation exactly as validate_datasets split them.

Each file is hashed as it is copied and must match the sha256 the validation recorded; the copy
is then read with the validator's own readers (and column renames) and verdicts (and converted
as the validation converted it), every record is placed by the validator's own digest and
splitter, and invalid records are left out only when the validation left them out
(drop_invalid), so the counts, and the records dropped by code, must come out as the validation
reported. Anything else means the data changed since.
"""

import hashlib
import tempfile
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import orjson
from pydantic import BaseModel, Field

from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.convert import to_sft
from tools.dataset_validator.formats import FormatChecker
from tools.dataset_validator.hygiene import RecordIndex, Splitter
from tools.dataset_validator.kinds import ErrorCode
from tools.dataset_validator.readers import (
    DecompressionBudget,
    RecordReader,
    UnreadableFileError,
    file_type,
)
from tools.dataset_validator.results import DatasetReport, FileInfo
from tools.dataset_validator.sources import Sources
from tools.dataset_validator.verdicts import judge
from tools.errors import UserError
from tools.package_builder.config import FilesConfig
from tools.package_builder.inputs import ValidatedDatasets
from tools.package_builder.shapes import Shape, trl_record
from tools.package_builder.writer import FileDigest, HashingFile, StagedPackage

HASH_CHUNK = 1 << 20


class DataFile(BaseModel):
    path: str
    records: int
    sha256: str
    size_bytes: int


class SourceFile(BaseModel):
    name: str = Field(description="The file's name where the dataset came from.")
    packaged_as: str | None = Field(description="Its copy in the package; None when not copied.")
    sha256: str
    size_bytes: int


class PackagedData(BaseModel):
    shape: Shape
    conversational: bool = Field(description="Records hold message lists (need a chat template).")
    train: DataFile
    validation: DataFile | None
    sources: dict[str, list[SourceFile]] = Field(description="Per dataset ref, its files.")


@dataclass(frozen=True)
class DataPlan:
    """What to package and how: the validated datasets, their layout, the file names."""

    datasets: ValidatedDatasets
    shape: Shape
    files: FilesConfig
    copy_source_files: bool


class DatasetChangedError(UserError):
    def __init__(self, ref: str, detail: str) -> None:
        super().__init__(
            f"Dataset {ref} changed since it was validated ({detail}); nothing was written. "
            "Call validate_datasets with the draft_id again, then finalize_package."
        )


def package_datasets(
    plan: DataPlan,
    package: StagedPackage,
    config: DatasetsConfig,
    sources: Sources,
    checkpoint: Callable[[], None],
) -> PackagedData:
    """Write the package's data files; DatasetChangedError when the data is not what was checked."""
    writer = _SplitWriter(package, plan, config, checkpoint)
    found: dict[str, list[SourceFile]] = {}
    with tempfile.TemporaryDirectory(prefix="training-package-fetch-") as workdir, writer:
        for position, dataset in enumerate(plan.datasets.datasets, start=1):
            local = _fetch(dataset, sources, Path(workdir), checkpoint)
            copies = [
                _verified_copy(dataset, recorded, local[recorded.name], package, plan, position)
                for recorded in dataset.files
            ]
            found[dataset.ref] = [source for source, _ in copies]
            counts = _Counts()
            for _, path in copies:
                writer.add_file(dataset, path, counts)
            if (counts.train, counts.validation) != (dataset.split.train, dataset.split.validation):
                raise DatasetChangedError(
                    dataset.ref,
                    f"{counts.train} training and {counts.validation} validation records now, "
                    f"{dataset.split.train} and {dataset.split.validation} when validated",
                )
            dropped = {str(code): n for code, n in counts.dropped.items()}
            if dropped != dataset.dropped_counts:
                raise DatasetChangedError(
                    dataset.ref,
                    f"invalid records left out now: {_by_code(dropped)}; when validated: "
                    f"{_by_code(dataset.dropped_counts)}",
                )
    train, validation = writer.results()
    return PackagedData(
        shape=plan.shape,
        conversational=writer.conversational,
        train=train,
        validation=validation,
        sources=found,
    )


def _fetch(
    dataset: DatasetReport, sources: Sources, workdir: Path, checkpoint: Callable[[], None]
) -> dict[str, Path]:
    """Each recorded file's local path: where a local file was validated, else fetched again."""
    if dataset.source == "local":
        (recorded,) = dataset.files
        return {recorded.name: Path(dataset.location)}
    resolved = sources.resolve(dataset.ref, workdir, checkpoint)
    paths = {item.name: item.path for item in resolved.files}
    missing = sorted({f.name for f in dataset.files} - set(paths))
    if missing:
        raise DatasetChangedError(dataset.ref, f"{', '.join(missing)} no longer there")
    return paths


def _verified_copy(
    dataset: DatasetReport,
    recorded: FileInfo,
    path: Path,
    package: StagedPackage,
    plan: DataPlan,
    position: int,
) -> tuple[SourceFile, Path]:
    """(what the manifest says of the file, the path to read records from), hash checked."""
    try:
        if plan.copy_source_files:
            name = _source_name(plan.files.source_dir, position, dataset, recorded)
            digest = package.copy_in(name, path)
            readable = package.root / PurePosixPath(name)
        else:
            name, digest, readable = None, _sha256(path), path
    except FileNotFoundError as exc:
        raise DatasetChangedError(dataset.ref, f"{path} is gone") from exc
    if digest.sha256 != recorded.sha256:
        raise DatasetChangedError(
            dataset.ref,
            f"{recorded.name}: sha256 {digest.sha256[:12]}…, validated {recorded.sha256[:12]}…",
        )
    source = SourceFile(
        name=recorded.name, packaged_as=name, sha256=digest.sha256, size_bytes=digest.size_bytes
    )
    return source, readable


def _source_name(source_dir: str, position: int, dataset: DatasetReport, file: FileInfo) -> str:
    """data/source/<dataset no>-[<file no>-]<file name>: unique however the datasets are named."""
    base = PurePosixPath(file.name).name
    if len(dataset.files) > 1:
        base = f"{dataset.files.index(file) + 1}-{base}"
    return f"{source_dir}/{position}-{base}"


def _sha256(path: Path) -> FileDigest:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(sha256=digest.hexdigest(), size_bytes=size)


@dataclass
class _Counts:
    train: int = 0
    validation: int = 0
    dropped: Counter[ErrorCode] = field(default_factory=Counter)  # by first error's code


def _by_code(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {code}" for code, n in sorted(counts.items())) or "none"


class _SplitWriter:
    """The training and validation files, written record by record as the datasets are read."""

    def __init__(
        self,
        package: StagedPackage,
        plan: DataPlan,
        config: DatasetsConfig,
        checkpoint: Callable[[], None],
    ) -> None:
        self._package, self._plan = package, plan
        self._config, self._checkpoint = config, checkpoint
        self._checker = FormatChecker(
            config.formats, config.limits.max_quoted_chars, drop_media=plan.datasets.drop_media
        )
        self._budget = DecompressionBudget(config.limits)  # the validation's bounds, again
        split = plan.datasets.split
        self._index = RecordIndex(split.seed)
        self._splitter = Splitter(split.validation_split or 0.0)
        self._stack = ExitStack()
        self._open: dict[str, HashingFile] = {}
        self._records = {plan.files.train_data: 0, plan.files.validation_data: 0}
        self.conversational = plan.shape is Shape.MESSAGES
        self._kinds: set[bool] = set()

    def __enter__(self) -> "_SplitWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def add_file(self, dataset: DatasetReport, path: Path, counts: _Counts) -> None:
        """Every record of one of `dataset`'s files, checked, placed and written."""
        kind = file_type(path.name)
        if kind is None:
            raise DatasetChangedError(dataset.ref, f"{path.name} is not a dataset file")
        config, checker = self._config, self._checker
        every = config.reading.check_every_records
        quoted, drop = config.limits.max_quoted_chars, self._plan.datasets.drop_invalid
        try:
            with RecordReader(
                path,
                kind,
                config.reading,
                config.limits.max_line_bytes,
                self._budget,
                self._plan.datasets.columns,
            ) as reader:
                for number, _, value in reader.records():
                    if not number % every:
                        self._checkpoint()
                    fmt, example, problems = judge(value, checker, quoted)
                    if example is None or fmt is not dataset.format:
                        if fmt not in (None, dataset.format) or not drop:
                            raise DatasetChangedError(
                                dataset.ref,
                                f"record {number} is no longer a valid {dataset.format}",
                            )
                        counts.dropped[problems[0][0]] += 1
                        continue
                    if dataset.converted is not None:
                        example = to_sft(example)
                        if example is None:  # left out, as the validation counted
                            continue
                    digest, _ = self._index.digest(example)
                    held_out = dataset.role == "validation" or self._splitter.is_validation(digest)
                    self._write(held_out, trl_record(self._plan.shape, example), dataset)
                    if held_out:
                        counts.validation += 1
                    else:
                        counts.train += 1
        except UnreadableFileError as exc:
            raise DatasetChangedError(dataset.ref, str(exc)) from exc

    def _write(self, held_out: bool, record: dict[str, object], dataset: DatasetReport) -> None:
        if self._plan.shape in (Shape.PROMPT_COMPLETION, Shape.PREFERENCE, Shape.UNPAIRED):
            self._kinds.add(isinstance(record["prompt"], list))
            if len(self._kinds) > 1:
                raise UserError(
                    f"{dataset.ref} mixes records whose prompt is a string with records whose "
                    "prompt is a list of messages; a trainer reads one kind per run. Make them "
                    "all one kind, validate again, then finalize_package."
                )
            self.conversational = self._kinds == {True}
        files = self._plan.files
        name = files.validation_data if held_out else files.train_data
        if name not in self._open:
            self._open[name] = self._stack.enter_context(self._package.create(name))
        self._open[name].write(orjson.dumps(record) + b"\n")
        self._records[name] += 1

    def results(self) -> tuple[DataFile, DataFile | None]:
        """The training file and the validation file (None when nothing was held out)."""
        files, digests = self._plan.files, self._package.digests
        made = [
            DataFile(path=name, records=self._records[name], **digests[name].model_dump())
            for name in (files.train_data, files.validation_data)
            if name in digests
        ]
        if not made or made[0].path != files.train_data:
            raise UserError(
                "No record landed in the training set: validate_datasets with a smaller "
                "validation_split, or more data."
            )
        return made[0], made[1] if len(made) > 1 else None
