"""Token-length statistics kept as a histogram: exact percentiles without a list per record.

Memory grows with the number of distinct lengths (bounded by the longest record), not with the
number of records; the longest and shortest few records are kept by number for outlier examples.
"""

import heapq
import math
from collections import Counter

from tools.dataset_validator.report import TokenStats


class LengthStats:
    def __init__(self, keep: int) -> None:
        self.histogram: Counter[int] = Counter()
        self.count = 0
        self.total = 0
        self._keep = keep
        self._longest: list[tuple[int, int]] = []  # min-heap of (length, record)
        self._shortest: list[tuple[int, int]] = []  # min-heap of (-length, -record)

    def add(self, length: int, record: int) -> None:
        self.histogram[length] += 1
        self.count += 1
        self.total += length
        if len(self._longest) < self._keep:
            heapq.heappush(self._longest, (length, record))
            heapq.heappush(self._shortest, (-length, -record))
            return
        if length > self._longest[0][0]:
            heapq.heapreplace(self._longest, (length, record))
        if -length > self._shortest[0][0]:
            heapq.heapreplace(self._shortest, (-length, -record))

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
            max=max(self.histogram),
            total=self.total,
        )

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
        variance = sum(n * (length - mean) ** 2 for length, n in self.histogram.items())
        spread = math.sqrt(variance / self.count)
        if spread == 0:
            return 0, [], mean, mean
        low, high = mean - zscore * spread, mean + zscore * spread
        count = sum(n for length, n in self.histogram.items() if length < low or length > high)
        examples = [record for length, record in self._longest if length > high]
        examples += [-record for length, record in self._shortest if -length < low]
        return count, sorted(examples)[: self._keep], low, high
