"""Bounded tallies: every occurrence counted, only the first few of each code kept as examples."""

from bisect import insort
from collections import Counter
from operator import itemgetter

from tools.dataset_validator.kinds import ErrorCode, WarningCode
from tools.dataset_validator.results import FIXES, DatasetWarning, RecordError

_record = itemgetter(0)


class ErrorLog:
    def __init__(self, keep: int) -> None:
        self.counts: Counter[ErrorCode] = Counter()
        self._examples: dict[ErrorCode, list[RecordError]] = {}
        self._keep = keep

    def add(
        self,
        code: ErrorCode,
        message: str,
        *,
        record: int | None = None,
        line: int | None = None,
        file: str | None = None,
        field: str | None = None,
        fix: str | None = None,
        dropped: bool = False,
    ) -> None:
        """Count an error; keep it as an example while the code has fewer than `keep`. `fix`:
        what to do in this case, when it says more than the code's FIXES entry; `dropped`:
        its record was left out."""
        self.counts[code] += 1
        kept = self._examples.setdefault(code, [])
        if len(kept) < self._keep:
            kept.append(
                RecordError(
                    code=code,
                    record=record,
                    line=line,
                    file=file,
                    field=field,
                    message=message,
                    fix=fix or FIXES[code],
                    dropped=dropped,
                )
            )

    def add_counted(self, code: ErrorCode, count: int, examples: list[RecordError]) -> None:
        """Errors found in bulk (such as the records of a minority format)."""
        self.counts[code] += count
        kept = self._examples.setdefault(code, [])
        kept.extend(examples[: self._keep - len(kept)])

    def discard(self, code: ErrorCode) -> None:
        """Forget a code's errors (a dataset-level error says it all instead)."""
        self.counts.pop(code, None)
        self._examples.pop(code, None)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def examples(self) -> list[RecordError]:
        """Each code's examples, codes in the order they were first met."""
        return [e for kept in self._examples.values() for e in kept]


class WarningLog:
    """Warnings counted per code, with the first few records of each (by record number, so
    records measured a batch at a time keep the order they have in the file)."""

    def __init__(self, keep: int) -> None:
        self.counts: Counter[WarningCode] = Counter()
        self._examples: dict[WarningCode, list[tuple[int, str | None]]] = {}
        self._keep = keep

    def add(self, code: WarningCode, record: int, detail: str | None = None) -> None:
        self.counts[code] += 1
        self._remember(code, record, detail)

    def add_many(
        self, code: WarningCode, records: list[int], details: list[str] | None = None
    ) -> None:
        """add() for many records, in ascending order."""
        if not records:
            return
        self.counts[code] += len(records)
        for position, record in enumerate(records[: self._keep]):
            self._remember(code, record, details[position] if details else None)

    def _remember(self, code: WarningCode, record: int, detail: str | None) -> None:
        kept = self._examples.setdefault(code, [])
        if len(kept) < self._keep or record < kept[-1][0]:
            insort(kept, (record, detail), key=_record)
            del kept[self._keep :]

    def records(self, code: WarningCode) -> list[int]:
        return [record for record, _ in self._examples.get(code, [])]

    def first_detail(self, code: WarningCode) -> str | None:
        return next((d for _, d in self._examples.get(code, []) if d), None)

    def warning(
        self,
        code: WarningCode,
        message: str,
        count: int | None = None,
        records: list[int] | None = None,
        lines: list[int] | None = None,
    ) -> DatasetWarning:
        return DatasetWarning(
            code=code,
            count=self.counts[code] if count is None else count,
            message=message,
            records=self.records(code) if records is None else records,
            lines=lines or [],
            fix=FIXES[code],
        )
