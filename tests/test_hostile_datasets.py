"""Hostile dataset files: each is answered with a report, in bounded time and memory.

Every case validates in a child process (the benchmark's harness), which reports its own peak
RSS; a hang fails through the subprocess timeout, a crash through a non-zero exit.
"""

from pathlib import Path

import pytest

from tests.bench.bench_validate import run_child

TIME_BOUND_S = 300
# the validator idles at about 75 MB; streaming keeps it flat
PEAK_RSS_BOUND_MB = 250
MODES = pytest.mark.parametrize("mode", ["lean", "native"])
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


@MODES
def test_a_million_tiny_records(tmp_path: Path, mode: str) -> None:
    path = write(tmp_path / "million.jsonl", b'{"text": "a b c"}\n' * 1_000_000)
    outcome = validate_in_child(path, mode)
    assert outcome["records"] == 1_000_000, outcome
