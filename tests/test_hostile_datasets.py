"""Hostile dataset files: each is answered with a report, in bounded time and memory.

Every large case validates in a child process (the benchmark's harness), which reports its own
peak RSS; a hang fails through the subprocess timeout, a crash through a non-zero exit. The
decompression caps, lowered for a test, are checked in process.
"""

import gzip
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from server.settings import load_settings
from tests.bench.bench_validate import MODES as READING_MODES
from tests.bench.bench_validate import run_child
from tests.support import isolated_env
from tools.dataset_validator.config import DatasetsConfig
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.kinds import FileType
from tools.dataset_validator.listing import list_datasets
from tools.dataset_validator.readers import DecompressionBudget, FileTooLargeError, RecordReader
from tools.dataset_validator.results import ValidationReport
from tools.dataset_validator.roots import allowed_roots
from tools.dataset_validator.service import ValidationRequest, validate_datasets
from tools.dataset_validator.sources import Sources
from tools.errors import UserError

TIME_BOUND_S = 300
# Generous for a noisy shared machine: the point is seconds, not the 13 s+ of CPU that
# decompressing all 4 GB of a 4 MB gzip of zeros costs.
REFUSAL_TIME_BOUND_S = 30
GIB = 1 << 30
NO_HUB = HubAccess(endpoint="http://127.0.0.1:9", timeout_s=1)  # a closed port: never reached
# the validator idles at about 75 MB; streaming keeps it flat
PEAK_RSS_BOUND_MB = 250
MODES = pytest.mark.parametrize("mode", READING_MODES)  # the chat lane, and record by record
CHAT = (
    b'{"messages": [{"role": "user", "content": "hi"}, '
    b'{"role": "assistant", "content": "hello"}]}\n'
)


def write(path: Path, *chunks: bytes) -> Path:
    with path.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return path


def validate_in_child(path: Path, mode: str) -> dict:
    outcome = run_child(mode, path, timeout_s=TIME_BOUND_S)
    assert outcome["peak_rss_mb"] < PEAK_RSS_BOUND_MB, outcome
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "chunks"),
    [
        ("truncated_utf8.jsonl", [CHAT * 20, '{"text": "café'.encode()[:-1]]),
        ("nul_bytes.jsonl", [CHAT * 20, b'{"text": "a\x00b"}\n', b"\x00\x00\x00\n"]),
        ("deeply_nested.jsonl", [CHAT * 20, b"[" * 200_000 + b"]" * 200_000 + b"\n"]),
        ("hundred_mb_line.jsonl", [CHAT * 20, b'{"text": "' + b"a" * 100_000_000 + b'"}\n']),
    ],
)
@MODES
def test_hostile_file_gets_a_report(
    tmp_path: Path, name: str, chunks: list[bytes], mode: str
) -> None:
    outcome = validate_in_child(write(tmp_path / name, *chunks), mode)
    assert outcome["records"] >= 21 and outcome["valid"] is False, outcome


@pytest.mark.slow
@MODES
def test_a_million_tiny_records(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path / "million.jsonl", b'{"text": "a b c"}\n' * 1_000_000)
    outcome = validate_in_child(path, mode)
    assert outcome["records"] == 1_000_000, outcome


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> DatasetsConfig:
    """The shipped datasets config, loaded once for the module."""
    return load_settings(env=isolated_env(tmp_path_factory.mktemp("config"))).datasets


def capped(config: DatasetsConfig, **limits: int) -> DatasetsConfig:
    return config.model_copy(update={"limits": config.limits.model_copy(update=limits)})


def validate(config: DatasetsConfig, folder: Path, names: list[str]) -> ValidationReport:
    sources = Sources(config, allowed_roots([folder]), NO_HUB, None)
    request = ValidationRequest(datasets=names, max_seq_length=2048)
    return validate_datasets(request, config, sources, NO_HUB)


def chat_lines(count: int, start: int = 0) -> bytes:
    """Distinct chat records: gzip compresses them the few times real data compresses."""
    return b"".join(
        orjson.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}: how do I reset password {i}?"},
                    {"role": "assistant", "content": f"Answer {i}: open settings {i * 7919}."},
                ]
            }
        )
        + b"\n"
        for i in range(start, start + count)
    )


@pytest.fixture(scope="module")
def one_gib_string_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zstd Parquet file (~33 KB) holding one 1 GiB string, written in a child process: the
    writer holds the value and its page (~2 GB), which this process should not."""
    path = tmp_path_factory.mktemp("parquet") / "one_gib_string.parquet"
    script = textwrap.dedent(
        f"""
        import pyarrow as pa, pyarrow.parquet as pq
        data = pa.py_buffer(bytes({GIB}))  # zeros, from calloc: not resident until touched
        offsets = pa.array([0, {GIB}], pa.int64()).buffers()[1]
        text = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, data])
        pq.write_table(pa.table({{"text": text}}), {str(path)!r}, compression="zstd",
                       use_dictionary=False, write_statistics=False)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=TIME_BOUND_S)
    return path


@pytest.mark.slow
@MODES
def test_a_parquet_file_holding_one_1_gib_string(one_gib_string_parquet: Path, mode: str) -> None:
    """Refused from its metadata before any page is read: reading would cost 1 GiB and more."""
    outcome = validate_in_child(one_gib_string_parquet, mode)
    assert outcome["valid"] is False and outcome["records"] == 0, outcome
    message = outcome["errors"]["file_too_large"]
    assert "column 'text'" in message and "limits.max_parquet_column_chunk_bytes" in message


@pytest.mark.slow
@MODES
def test_a_gzip_of_zeros_is_refused_after_a_fraction_of_it(
    config: DatasetsConfig, tmp_path: Path, mode: str
) -> None:
    """4 MB of gzip, 4 GiB of zeros: refused once past limits.compression_ratio_after_bytes,
    not after decompressing it all."""
    member = gzip.compress(bytes(1 << 20))  # gzip files may be several members end to end
    path = write(tmp_path / "zeros.jsonl.gz", *[member] * 4096)
    limits = config.limits  # the shipped limits, as the child loads them
    outcome = validate_in_child(path, mode)
    assert outcome["valid"] is False and outcome["seconds"] < REFUSAL_TIME_BOUND_S, outcome
    message = outcome["errors"]["file_too_large"]
    assert "limits.max_compression_ratio" in message, outcome
    found = re.search(r"decompress to ([\d,]+) bytes", message)
    assert found is not None, message
    decompressed = int(found.group(1).replace(",", ""))
    assert decompressed < 2 * limits.compression_ratio_after_bytes < GIB, message


def test_a_gzip_past_the_per_file_cap_is_refused_and_reading_stops(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    data = chat_lines(30_000)  # ~3.6 MB
    (tmp_path / "big.jsonl.gz").write_bytes(gzip.compress(data))
    config = capped(config, max_decompressed_bytes_per_file=1 << 20)
    (dataset,) = validate(config, tmp_path, ["big.jsonl.gz"]).datasets
    assert dataset.error_counts == {"file_too_large": 1} and not dataset.valid
    (error,) = dataset.errors
    assert error.message.startswith("big.jsonl.gz: the file decompresses to more than 1,048,576")
    assert "limits.max_decompressed_bytes_per_file" in error.message
    assert 0 < dataset.records < data.count(b"\n")  # what came before the cap was checked


def test_the_per_call_cap_stops_a_call_over_several_files(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    names = []
    for number in range(3):
        names.append(f"part{number}.jsonl.gz")
        (tmp_path / names[-1]).write_bytes(gzip.compress(chat_lines(5_000, number * 5_000)))
    config = capped(
        config, max_decompressed_bytes_per_file=1 << 20, max_decompressed_bytes_per_call=3 << 19
    )
    assert validate(config, tmp_path, names[:1]).valid  # each file alone is within the caps
    with pytest.raises(UserError, match=r"limits\.max_decompressed_bytes_per_call") as raised:
        validate(config, tmp_path, names)
    assert "1,572,864 bytes" in str(raised.value) and str(tmp_path) not in str(raised.value)


def test_listing_sniffs_through_the_same_bounded_readers(
    config: DatasetsConfig, tmp_path: Path
) -> None:
    """list_datasets reads each file's first records as validation does: a gzip of zeros
    stops at the ratio bound (the sniff skips a long line by reading on to its end)."""
    member = gzip.compress(bytes(1 << 20))
    zeros = write(tmp_path / "zeros.jsonl.gz", *[member] * 256)
    (tmp_path / "chat.jsonl.gz").write_bytes(gzip.compress(chat_lines(20)))
    config = capped(config, compression_ratio_after_bytes=1 << 20)
    sources = Sources(config, allowed_roots([tmp_path]), NO_HUB, None)
    listing = list_datasets(config, sources, None, "local")
    formats = {entry.name: entry.format for entry in listing.datasets}
    assert formats == {"chat.jsonl.gz": "chat", "zeros.jsonl.gz": None}
    reading, budget = config.reading, DecompressionBudget(config.limits)
    with (
        RecordReader(zeros, FileType.JSONL, reading, reading.sniff_bytes, budget) as reader,
        pytest.raises(FileTooLargeError, match=r"limits\.max_compression_ratio"),
    ):
        list(reader.records())
    assert reader.decompressed <= 2 * config.limits.compression_ratio_after_bytes
