"""Benchmark: a cached search_models round trip over stdio vs a no-op tool on the same server.

Run: uv run python -m tests.bench.bench_search_stdio [--calls N]
Prints calls per second for both and the ratio search/no-op (latency); issue goal: <= 1.5x.
The two are measured in interleaved rounds in one run, so machine noise hits both alike.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from tests.fake_hub import serve_fake_hub
from tests.support import hub_env, seed_models

SEARCH = {"query": "chat", "max_params_b": 10}


async def timed(client: Client, tool: str, arguments: dict, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        result = await client.call_tool(tool, arguments)
        assert not result.is_error, result.content
    return (time.perf_counter() - start) / calls


async def main(calls: int, rounds: int) -> None:
    with serve_fake_hub() as (hub, url), tempfile.TemporaryDirectory() as tmp:
        seed_models(hub)
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "tests.bench.noop_server"],
            env=hub_env(Path(tmp), url),
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        async with Client(params) as client:
            warm = await client.call_tool("search_models", SEARCH)
            assert warm.structured_content["source"] == "hub"
            await timed(client, "noop", {}, 20)
            noop, search = [], []
            for _ in range(rounds):
                noop.append(await timed(client, "noop", {}, calls))
                search.append(await timed(client, "search_models", SEARCH, calls))
            assert len(hub.requests_to("/api/models")) == 1, "later searches must hit the cache"
    noop_s, search_s = statistics.median(noop), statistics.median(search)
    print(f"rounds={rounds} calls/round={calls}")
    print(f"no-op tool:            {1 / noop_s:8.0f} calls/s  ({noop_s * 1e3:.2f} ms/call)")
    print(f"cached search_models:  {1 / search_s:8.0f} calls/s  ({search_s * 1e3:.2f} ms/call)")
    print(f"ratio (search / no-op latency): {search_s / noop_s:.2f}x  (goal <= 1.5x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.calls, args.rounds)
