"""Load benchmark: concurrent HTTP clients on estimate_deployment and a cached search_models,
against a no-op tool on the same server, in one run.

Run: uv run python -m tests.bench.bench_http_load [--clients N] [--calls K] [--rounds R]

Each client posts JSON-RPC tools/call requests over streamable HTTP (stateless, as replicas run)
one after another; all clients run concurrently. Reported per tool: calls per second, p50 and p99
latency, errors, and throughput as a share of the no-op's in the same round (median and range
over the rounds). Each round runs every tool, starting with a different one, so drift and noise
hit all alike. estimate_deployment runs twice: the same run every call (what a conversation
repeats) and a new run every call (train_tokens differs); the server estimates both afresh
every time (it keeps no memo of estimates: one takes well under a millisecond). Issue goal:
>= 0.8x the no-op throughput with zero errors.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from tests.fake_hub import serve_fake_hub
from tests.support import free_port, hub_env, seed_models

ROOT = Path(__file__).resolve().parents[2]
ESTIMATE = {
    "architecture": {
        "num_hidden_layers": 16,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
    },
    "training": {
        "method": "sft",
        "adapter": "lora",
        "batch_size": 2,
        "gradient_accumulation_steps": 4,
        "max_seq_length": 2048,
        "num_epochs": 3,
        "lora_r": 16,
        "gradient_checkpointing": True,
    },
    "train_tokens": 20_000_000,
}
SERIAL = itertools.count()  # makes every "new run" call's train_tokens unique in the run
# label: (tool, its arguments for each call)
CALLS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "noop": ("noop", dict),
    "search_models (cached)": ("search_models", lambda: {"query": "chat", "max_params_b": 10}),
    "estimate_deployment (same run)": ("estimate_deployment", lambda: ESTIMATE),
    "estimate_deployment (new run)": (
        "estimate_deployment",
        lambda: {**ESTIMATE, "train_tokens": ESTIMATE["train_tokens"] + next(SERIAL)},
    ),
}
HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


async def call(client: httpx2.AsyncClient, url: str, label: str) -> tuple[float, bool]:
    tool, arguments = CALLS[label]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments()},
    }
    start = time.perf_counter()
    try:
        response = await client.post(url, json=body, headers=HEADERS)
        data = next(
            json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")
        )
        ok = response.status_code == 200 and not data.get("result", {}).get("isError", True)
    except (httpx2.HTTPError, StopIteration, ValueError):
        ok = False
    return time.perf_counter() - start, ok


async def phase(url: str, label: str, clients: int, calls: int) -> dict[str, float]:
    """`clients` clients each making `calls` calls one after another; the clients are made
    before the clock starts (making one loads its TLS context: ~50 ms of the client's CPU)."""
    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx2.AsyncClient) -> None:
        nonlocal errors
        for _ in range(calls):
            elapsed, ok = await call(client, url, label)
            latencies.append(elapsed)
            errors += not ok

    async with contextlib.AsyncExitStack() as stack:
        made = [
            await stack.enter_async_context(httpx2.AsyncClient(timeout=60)) for _ in range(clients)
        ]
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for client in made))
        wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "rate": len(latencies) / wall,
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "errors": errors,
    }


def wait_for(port: int, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


async def main(clients: int, calls: int, rounds: int) -> None:
    with serve_fake_hub() as (hub, hub_url), tempfile.TemporaryDirectory() as tmp:
        seed_models(hub)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.noop_server", "--http", str(port)],
            cwd=ROOT,
            env=hub_env(Path(tmp), hub_url),
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for(port, proc)
            url = f"http://127.0.0.1:{port}/mcp"
            for label in CALLS:  # warm every path (the search fills the cache here)
                await phase(url, label, 1, 3)
            labels = list(CALLS)
            results: dict[str, list[dict[str, float]]] = {label: [] for label in CALLS}
            for round_ in range(rounds):
                turn = round_ % len(labels)
                for label in labels[turn:] + labels[:turn]:
                    results[label].append(await phase(url, label, clients, calls))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        assert len(hub.requests_to("/api/models")) == 1, "searches after the first are cached"

    def median(label: str, key: str) -> float:
        return statistics.median(r[key] for r in results[label])

    print(
        f"{clients} concurrent clients x {calls} calls, {rounds} rounds (medians), "
        f"{os.cpu_count()} CPUs, server and clients on one machine"
    )
    print(
        f"{'tool':31} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'vs no-op':>9} {'range':>11}"
    )
    for label in CALLS:
        errors = sum(r["errors"] for r in results[label])
        paired = zip(results[label], results["noop"], strict=True)
        ratios = [r["rate"] / n["rate"] for r, n in paired]
        print(
            f"{label:31} {median(label, 'rate'):8.0f} {median(label, 'p50') * 1e3:7.1f} "
            f"{median(label, 'p99') * 1e3:7.1f} {errors:6d} {statistics.median(ratios):8.2f}x "
            f"{min(ratios):5.2f}-{max(ratios):.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.calls, args.rounds))
