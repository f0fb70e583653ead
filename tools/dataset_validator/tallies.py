"""Bounded tallies: every occurrence counted, only the first few of each code kept as examples."""

from collections import Counter

from tools.dataset_validator.kinds import ErrorCode, WarningCode
from tools.dataset_validator.report import FIXES, DatasetWarning, RecordError


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
    ) -> None:
        self.counts[code] += 1
        kept = self._examples.setdefault(code, [])
        if len(kept) < self._keep:
            kept.append(
                RecordError(
                    code=code, record=record, line=line, file=file, field=field, message=message
                )
            )

    def add_counted(self, code: ErrorCode, count: int, examples: list[RecordError]) -> None:
        """Errors found in bulk (such as the records of a minority format)."""
        self.counts[code] += count
        kept = self._examples.setdefault(code, [])
        kept.extend(examples[: self._keep - len(kept)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def examples(self) -> list[RecordError]:
        """Each code's examples, codes in the order they were first met."""
        return [e for kept in self._examples.values() for e in kept]


class WarningLog:
    def __init__(self, keep: int) -> None:
        self.counts: Counter[WarningCode] = Counter()
        self._examples: dict[WarningCode, list[tuple[int, str | None]]] = {}
        self._keep = keep

    def add(self, code: WarningCode, record: int, detail: str | None = None) -> None:
        self.counts[code] += 1
        kept = self._examples.setdefault(code, [])
        if len(kept) < self._keep:
            kept.append((record, detail))

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
    ) -> DatasetWarning:
        return DatasetWarning(
            code=code,
            count=self.counts[code] if count is None else count,
            message=message,
            records=self.records(code) if records is None else records,
            fix=FIXES[code],
        )
