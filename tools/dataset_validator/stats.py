"""Token-length statistics kept as a histogram: exact percentiles without a list per record.

Memory grows with the number of distinct lengths (bounded by the longest record), not with the
number of records; the longest and shortest few records are kept by number for outlier examples
(ties go to the earlier record, so the order records are added in does not matter).
"""

import bisect
import heapq
import math
from collections import Counter

import numpy as np

from tools.dataset_validator.results import TokenStats


class LengthStats:
    def __init__(self, keep: int) -> None:
        self.histogram: Counter[int] = Counter()
        self.count = 0
        self.total = 0
        self._keep = keep
        self._longest: list[tuple[int, int]] = []  # min-heap of (length, -record)
        self._shortest: list[tuple[int, int]] = []  # min-heap of (-length, -record)

    def add_many(self, lengths: np.ndarray, records: np.ndarray) -> None:
        """Count records' lengths (`records`: their numbers, for the outlier examples)."""
        if not len(lengths):
            return
        values, counts = np.unique(lengths, return_counts=True)
        self.histogram.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        self.count += len(lengths)
        self.total += int(lengths.sum())
        keep = self._keep
        longest = np.lexsort((records, -lengths))[:keep]  # only these can enter either list
        shortest = np.lexsort((records, lengths))[:keep]
        for index in np.union1d(longest, shortest).tolist():
            self._keep_extremes(int(lengths[index]), int(records[index]))

    def _keep_extremes(self, length: int, record: int) -> None:
        """Keep the `keep` longest and shortest records; each heap's root is its worst entry."""
        longest, shortest = (length, -record), (-length, -record)
        if len(self._longest) < self._keep:
            heapq.heappush(self._longest, longest)
            heapq.heappush(self._shortest, shortest)
            return
        if longest > self._longest[0]:
            heapq.heapreplace(self._longest, longest)
        if shortest > self._shortest[0]:
            heapq.heapreplace(self._shortest, shortest)

    def merge(self, other: "LengthStats") -> None:
        """Add another dataset's lengths (for the totals; outlier examples stay per dataset)."""
        self.histogram.update(other.histogram)
        self.count += other.count
        self.total += other.total

    def summary(self) -> TokenStats | None:
        if not self.count:
            return None
        return TokenStats(
            count=self.count,
            mean=round(self.total / self.count, 1),
            p50=self.percentile(0.50),
            p95=self.percentile(0.95),
            p99=self.percentile(0.99),
            max=max(self.histogram),
            total=self.total,
        )

    def buckets(self, bounds: list[int]) -> list[tuple[int, int]]:
        """The lengths in buckets with these upper bounds (a last one takes the rest), each
        non-empty one as (its longest record, records), shortest first: enough for the
        expected longest of a random batch in a few pairs."""
        longest: dict[int, int] = {}
        records: Counter[int] = Counter()
        for length, n in self.histogram.items():
            bucket = bisect.bisect_left(bounds, length)
            longest[bucket] = max(longest.get(bucket, 0), length)
            records[bucket] += n
        return [(longest[b], records[b]) for b in sorted(records)]

    def percentile(self, share: float) -> int:
        """Nearest-rank percentile: the smallest length at or below which `share` of records lie."""
        rank = max(1, math.ceil(share * self.count))
        seen = 0
        for length in sorted(self.histogram):
            seen += self.histogram[length]
            if seen >= rank:
                return length
        return max(self.histogram)

    def outliers(self, zscore: float) -> tuple[int, list[int], float, float]:
        """Records more than `zscore` standard deviations from the mean: (count, example
        record numbers, low bound, high bound)."""
        if self.count < 2:
            return 0, [], 0.0, 0.0
        mean = self.total / self.count
        ordered = sorted(self.histogram.items())  # one summation order, however records came
        variance = sum(n * (length - mean) ** 2 for length, n in ordered)
        spread = math.sqrt(variance / self.count)
        if spread == 0:
            return 0, [], mean, mean
        low, high = mean - zscore * spread, mean + zscore * spread
        count = sum(n for length, n in self.histogram.items() if length < low or length > high)
        examples = [-record for length, record in self._longest if length > high]
        examples += [-record for length, record in self._shortest if -length < low]
        return count, sorted(examples)[: self._keep], low, high
