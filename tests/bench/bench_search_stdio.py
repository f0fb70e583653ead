"""Benchmark: a cached search_models round trip over stdio vs a no-op tool on the same server.

Run: uv run python -m tests.bench.bench_search_stdio [--calls N] [--rounds R]

A bare JSON-RPC client writes one request line and reads the response line, so the figures are
the server's (stdio framing, dispatch, the tool, serialisation) and not a client library's: the
Python SDK client re-validates every structured result against its JSON schema, which costs more
than the server's whole round trip for a result the size of a search. That client is timed too,
for reference. Rounds alternate between the two tools, so machine noise hits both alike.
Issue goal: cached search / no-op latency <= 1.5x.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from tests.fake_hub import serve_fake_hub
from tests.support import hub_env, seed_models

ROOT = Path(__file__).resolve().parents[2]
SEARCH = {"query": "chat", "max_params_b": 10}
SERVER = [sys.executable, "-m", "tests.bench.noop_server"]


class RawClient:
    """JSON-RPC over the server's stdin/stdout, one request in flight at a time."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc, self.next_id = proc, 0

    async def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        line = json.dumps(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        )
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        response = json.loads(await self.proc.stdout.readline())
        if "error" in response or response["result"].get("isError"):
            raise RuntimeError(response)
        return response["result"]

    async def handshake(self) -> None:
        await self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        )
        note = {"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}}
        self.proc.stdin.write(json.dumps(note).encode() + b"\n")


async def per_call(call, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls


async def compare(noop, search, calls: int, rounds: int) -> tuple[float, float]:
    await per_call(noop, 20)
    await per_call(search, 20)
    noop_s, search_s = [], []
    for _ in range(rounds):
        noop_s.append(await per_call(noop, calls))
        search_s.append(await per_call(search, calls))
    return statistics.median(noop_s), statistics.median(search_s)


async def raw(env: dict[str, str], calls: int, rounds: int) -> tuple[float, float]:
    proc = await asyncio.create_subprocess_exec(
        *SERVER,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        client = RawClient(proc)
        await client.handshake()
        warm = await client.request("tools/call", {"name": "search_models", "arguments": SEARCH})
        assert warm["structuredContent"]["source"] == "hub"

        async def noop() -> None:
            await client.request("tools/call", {"name": "noop", "arguments": {}})

        async def search() -> None:
            result = await client.request(
                "tools/call", {"name": "search_models", "arguments": SEARCH}
            )
            assert result["structuredContent"]["source"] == "cache"

        return await compare(noop, search, calls, rounds)
    finally:
        proc.stdin.close()
        await proc.wait()


async def sdk(env: dict[str, str], calls: int, rounds: int) -> tuple[float, float]:
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=env, cwd=str(ROOT))
    async with Client(params) as client:

        async def noop() -> None:
            await client.call_tool("noop", {})

        async def search() -> None:
            await client.call_tool("search_models", SEARCH)

        return await compare(noop, search, calls, rounds)


def report(label: str, noop_s: float, search_s: float) -> None:
    print(f"{label}")
    print(f"  no-op tool:           {1 / noop_s:7.0f} calls/s  {noop_s * 1e3:6.2f} ms/call")
    print(f"  cached search_models: {1 / search_s:7.0f} calls/s  {search_s * 1e3:6.2f} ms/call")
    print(f"  ratio (search / no-op latency): {search_s / noop_s:.2f}x")


async def main(calls: int, rounds: int) -> None:
    with serve_fake_hub() as (hub, url), tempfile.TemporaryDirectory() as tmp:
        seed_models(hub)
        env = hub_env(Path(tmp), url)
        server_side = await raw(env, calls, rounds)
        with_client = await sdk(env, calls, rounds)
        # one Hub request per server process: every later search is a cache hit
        assert len(hub.requests_to("/api/models")) == 2
    print(f"{rounds} rounds x {calls} calls per tool, medians; {os.cpu_count()} CPUs")
    report("bare JSON-RPC client (the server's round trip; goal <= 1.5x):", *server_side)
    report("Python SDK client (adds its schema validation of each result):", *with_client)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
