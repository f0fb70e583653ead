"""Benchmark validate_datasets: throughput against the orjson floor, and peak memory.

Run on demand (pytest does not collect tests/bench):

    uv run python tests/bench/bench_validate.py                # 200 MB throughput, 1 GB memory
    uv run python tests/bench/bench_validate.py --mb 50 --rss-mb 0

1. Throughput, for each layout (--layouts: chat; TRL preference pairs, standard and
   conversational): writes a seeded, realistic JSONL of --mb megabytes, then times, alternately
   and --repeat times each, the floor (`for line in file: orjson.loads(line)`) and a full
   validate_datasets of the same file (every check, the token estimate, the split, sha256), as
   installed (msgspec: the lanes) and record by record (record: the run built without the
   lanes, the path every line a lane does not take goes). It prints the best time of each, the
   throughputs and their ratios to the floor measured in the same run (goal for chat: at least
   0.5). For chat it also times the part no run can skip (each line decoded into Structs and
   its text digested without whitespace for the duplicate checks, nothing else): the most
   validate_datasets could reach on this machine.
2. Memory: writes a --rss-mb file and validates it, in each mode, in a child process that prints
   its own peak RSS; a child that only imports the validator gives the baseline (goal: peak
   under 150 MB).
"""

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from unittest import mock

import msgspec
import orjson
from xxhash import xxh3_128_digest

from tools.dataset_validator.conversation import bare
from tools.dataset_validator.hygiene import TURN_SEPARATOR

MB = 1_000_000
ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PROMPTS = [
    "You are a helpful support agent for Acme Cloud. Answer briefly and accurately.",
    "You are a friendly assistant for an online bookshop. Be concise.",
    "Tu es un assistant du service client. Réponds en français, poliment.",
]
WORDS = [
    "account",
    "billing",
    "invoice",
    "refund",
    "order",
    "shipping",
    "delivery",
    "password",
    "reset",
    "login",
    "error",
    "subscription",
    "plan",
    "upgrade",
    "downgrade",
    "cancel",
    "charge",
    "card",
    "payment",
    "address",
    "tracking",
    "number",
    "warehouse",
    "return",
    "label",
    "exchange",
    "size",
    "colour",
    "stock",
    "available",
    "today",
    "tomorrow",
    "week",
    "support",
    "ticket",
    "agent",
    "manager",
    "please",
    "thanks",
    "sorry",
    "help",
    "understand",
    "check",
    "update",
    "confirm",
    "email",
    "phone",
    "the",
    "a",
    "an",
    "to",
    "of",
    "in",
    "on",
    "for",
    "with",
    "and",
    "or",
    "but",
    "if",
    "then",
    "so",
    "because",
    "when",
    "where",
    "which",
    "what",
    "how",
    "your",
    "our",
    "my",
    "we",
    "you",
    "it",
    "this",
    "that",
    "these",
    "those",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "have",
    "has",
    "had",
    "do",
    "does",
    "can",
    "could",
    "would",
    "should",
    "will",
    "may",
    "might",
    "must",
    "not",
    "no",
    "yes",
    "über",
    "naïve",
    "café",
    "東京",
    "données",
]


def sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + rng.choice([".", "?", "!", "."])


def question(rng: random.Random, number: int) -> str:
    return f"Ticket {number}: " + " ".join(sentence(rng, 6, 20) for _ in range(rng.randint(1, 3)))


def answer(rng: random.Random) -> str:
    return "\n\n".join(
        " ".join(sentence(rng, 8, 24) for _ in range(rng.randint(1, 4)))
        for _ in range(rng.randint(1, 3))
    )


def record(rng: random.Random, number: int) -> bytes:
    """A support conversation: usually a system prompt, one to four exchanges."""
    messages = []
    if rng.random() < 0.9:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for turn in range(rng.randint(1, 4)):
        asked = question(rng, number) if turn == 0 else question(rng, turn).split(": ", 1)[1]
        messages += [
            {"role": "user", "content": asked},
            {"role": "assistant", "content": answer(rng)},
        ]
    return orjson.dumps({"messages": messages}) + b"\n"


def preference(rng: random.Random, number: int) -> bytes:
    """TRL's standard preference pair: a prompt, a better and a worse answer, as strings."""
    pair = {"prompt": question(rng, number), "chosen": answer(rng), "rejected": answer(rng)}
    return orjson.dumps(pair) + b"\n"


def preference_conversational(rng: random.Random, number: int) -> bytes:
    """TRL's conversational preference pair: a system and user prompt, two assistant answers."""
    prompt = [{"role": "user", "content": question(rng, number)}]
    if rng.random() < 0.9:
        prompt.insert(0, {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    pair = {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": answer(rng)}],
        "rejected": [{"role": "assistant", "content": answer(rng)}],
    }
    return orjson.dumps(pair) + b"\n"


LAYOUTS = {
    "chat": record,
    "preference": preference,
    "preference_conversational": preference_conversational,
}


def write_dataset(path: Path, size_bytes: int, seed: int = 7, layout: str = "chat") -> int:
    rng = random.Random(seed)
    make = LAYOUTS[layout]
    written = count = 0
    with path.open("wb", buffering=1 << 20) as out:
        while written < size_bytes:
            line = make(rng, count)
            out.write(line)
            written += len(line)
            count += 1
    return count


def floor(path: Path) -> float:
    """Seconds to parse every line with orjson."""
    start = time.perf_counter()
    with path.open("rb") as file:
        for line in file:
            orjson.loads(line)
    return time.perf_counter() - start


class _Message(msgspec.Struct):
    role: str
    content: str


class _Chat(msgspec.Struct):
    messages: list[_Message]


def digest_bound(path: Path) -> float:
    """Seconds for the two things no validator of this design can skip on chat: decoding each
    line into Structs (as the chat lane does) and digesting its turns' text without ASCII
    whitespace (RecordIndex's duplicate digest). No rule, placeholder, token count or split:
    validate_datasets cannot beat this."""
    decode = msgspec.json.Decoder(_Chat).decode
    seed = 0
    start = time.perf_counter()
    with path.open("rb") as file:
        for line in file:
            text = TURN_SEPARATOR.join([message.content for message in decode(line).messages])
            xxh3_128_digest(bare(text), seed)
    return time.perf_counter() - start


MODES = ("msgspec", "record")
"""How a run reads JSON Lines: through the lanes (the default), or record by record."""


@contextmanager
def record_path() -> Iterator[None]:
    """Runs built meanwhile send every record the record path: no lanes. Test machinery,
    not a setting: both write the same report, the lanes faster."""
    from tools.dataset_validator import service as validator

    with mock.patch.object(validator, "Lanes", lambda *_: None):
        yield


def validate(path: Path, mode: str) -> tuple[float, dict]:
    """One full validation as the server runs it (no model selected: the token estimate):
    (seconds, outcome). The sha256 of the file is computed in a helper thread meanwhile."""
    from server.settings import load_settings
    from tools.dataset_validator.hub import HubAccess
    from tools.dataset_validator.roots import allowed_roots
    from tools.dataset_validator.service import ValidationRequest, validate_datasets
    from tools.dataset_validator.sources import Sources

    assert mode in MODES, mode
    config = load_settings(env={}).datasets
    hub = HubAccess(endpoint=None, timeout_s=1)
    sources = Sources(config, allowed_roots([path.parent]), hub, None)
    request = ValidationRequest(datasets=[path.name], max_seq_length=4096)
    with record_path() if mode == "record" else nullcontext():
        start = time.perf_counter()
        report = validate_datasets(request, config, sources, hub)
        elapsed = time.perf_counter() - start
    dataset = report.datasets[0]
    outcome = {
        "records": dataset.records,
        "valid": report.valid,
        "summary": report.summary,
        "errors": {str(error.code): error.message for error in reversed(dataset.errors)},
    }
    return elapsed, outcome


def child(mode: str, path: str) -> None:
    """Run in a subprocess: validate in a mode (or, as mode `imports`, only import the
    validator) and print the peak RSS as JSON."""
    if mode in MODES:
        elapsed, outcome = validate(Path(path), mode)
    else:
        elapsed, outcome = 0.0, {}
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1), "seconds": elapsed, **outcome}))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space execve made, whereas
    ru_maxrss survives execve and would report the parent's peak when that was larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(mode: str, path: Path, timeout_s: float | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=timeout_s,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load:.1f} at start"
    )


def throughput(path: Path, layout: str, mb: int, repeat: int) -> None:
    """Time the floor and validate_datasets in each mode on one layout's file; print the best."""
    records = write_dataset(path, mb * MB, layout=layout)
    size = path.stat().st_size
    print(f"throughput file: {size / MB:.0f} MB, {records:,} {layout} records")
    floors: list[float] = []
    bounds: list[float] = []
    runs: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(repeat):
        floors.append(floor(path))
        if layout == "chat":
            bounds.append(digest_bound(path))
        for mode, times in runs.items():
            elapsed, outcome = validate(path, mode)
            times.append(elapsed)
            assert outcome["records"] == records and outcome["valid"], outcome
    best_floor = min(floors)
    print(f"  wall clock, best of {repeat}:")
    print(f"    floor (orjson.loads per line): {size / MB / best_floor:7.1f} MB/s")
    if bounds:
        print(
            f"    decode + duplicate digest only:  {size / MB / min(bounds):7.1f} MB/s"
            f" = {best_floor / min(bounds):.2f} of the floor (the most validate_datasets can reach)"
        )
    for mode, times in runs.items():
        goal = " (goal >= 0.5)" if mode == MODES[0] and layout == "chat" else ""
        print(
            f"    validate_datasets, {mode + ':':9} {size / MB / min(times):7.1f} MB/s"
            f" = {best_floor / min(times):.2f} of the floor{goal}"
        )
    print(f"  {outcome['summary']}")
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="throughput file size (MB)")
    parser.add_argument("--rss-mb", type=int, default=1000, help="memory file size (MB); 0: skip")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS), help="what to time"
    )
    parser.add_argument("--dir", type=Path, help="where to write the files (default: a temp dir)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for layout in args.layouts:
            throughput(Path(tmp) / f"bench_{layout}.jsonl", layout, args.mb, args.repeat)

        if args.rss_mb:
            big = Path(tmp) / "bench_chat_big.jsonl"
            records = write_dataset(big, args.rss_mb * MB, seed=11)
            print(f"memory file: {big.stat().st_size / MB:.0f} MB, {records:,} chat records")
            baseline = run_child("imports", big)
            for mode in MODES:
                measured = run_child(mode, big)
                print(
                    f"  {mode}: peak RSS {measured['peak_rss_mb']:.0f} MB (goal < 150 MB); "
                    f"imports alone {baseline['peak_rss_mb']:.0f} MB; "
                    f"took {measured['seconds']:.1f} s"
                )


if __name__ == "__main__":
    main()
