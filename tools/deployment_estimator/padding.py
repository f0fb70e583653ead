"""How long the sequences of a padded micro-batch are: TRL pads each batch to its longest
example (no packing), and the shuffled sampler draws a batch's examples at random, so a batch of
b examples runs E[max of b lengths] tokens per sequence, from the data's length histogram:
P(max <= x) = F(x)^b, F the histogram's empirical CDF."""


def expected_batch_longest(histogram: list[tuple[int, int]], batch_size: int, cap: int) -> float:
    """E[longest of `batch_size` random examples], each cut at `cap` (max_seq_length);
    `histogram`: (length, records) pairs, a bucket's length standing for all its records."""
    total = sum(n for _, n in histogram)
    expected, seen, below = 0.0, 0, 0.0
    for length, n in sorted(histogram):
        seen += n
        at_most = (seen / total) ** batch_size
        expected += min(length, cap) * (at_most - below)
        below = at_most
    return expected
