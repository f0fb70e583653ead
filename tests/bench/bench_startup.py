"""Benchmark: how long a client waits from spawning the stdio server to its first tools/list.

Run: uv run python -m tests.bench.bench_startup [--pairs N]

A client such as Claude Desktop spawns the server for every chat, so its start-up is paid each
time. Each run starts a process, sends initialize, the initialized notification and tools/list
as bare JSON-RPC lines, and stops the clock at the tools/list answer. Runs go in pairs, the real
server (the installed console script, with drafts and caches in a temporary folder, offline)
then a hello-world MCPServer with one tool (tests/bench/hello_server.py), so drift on a shared
machine hits both alike; the figure is the median of the pairs' ratios. Issue goal: <= 1.25x.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.bench_validate import machine
from tests.support import CONSOLE_SCRIPT, isolated_env

ROOT = Path(__file__).resolve().parents[2]
HELLO = [sys.executable, "-m", "tests.bench.hello_server"]
REAL = [CONSOLE_SCRIPT, "serve"]
HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized", "params": {}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
]


def first_tools_list(command: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning `command` to reading its tools/list answer."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in HANDSHAKE))
        proc.stdin.flush()
        while line := proc.stdout.readline():
            if json.loads(line).get("id") == 2:
                return time.perf_counter() - start
        raise RuntimeError(f"{command[0]} closed its output before answering tools/list")
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        # A client spawns the server with bytecode cached (pip compiles it on install, and
        # Python writes it on the first run), so neither side may run with it turned off.
        env = isolated_env(Path(tmp), HF_HUB_OFFLINE="1", HOME=tmp)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        hello_env = {**env, "PYTHONPATH": str(ROOT)}
        for command, environment in ((REAL, env), (HELLO, hello_env)):
            first_tools_list(command, environment)  # warm the file cache, write the bytecode
        real, hello = [], []
        for _ in range(args.pairs):
            real.append(first_tools_list(REAL, env))
            hello.append(first_tools_list(HELLO, hello_env))
    ratios = [r / h for r, h in zip(real, hello, strict=True)]
    print(f"spawn to first tools/list, median of {args.pairs} pairs:")
    print(f"  hello-world MCPServer: {statistics.median(hello) * 1000:7.0f} ms")
    print(f"  training-package-mcp:  {statistics.median(real) * 1000:7.0f} ms")
    print(
        f"  ratio {statistics.median(ratios):.2f}x (pairs {min(ratios):.2f}-{max(ratios):.2f}; "
        "goal <= 1.25x)"
    )


if __name__ == "__main__":
    main()
