"""The real server plus a no-op tool: the baseline the benchmarks compare with.

`python -m tests.bench.noop_server` serves stdio; with `--http PORT`, streamable HTTP on
127.0.0.1:PORT (the same wiring as `training-package-mcp serve --http`).
"""

import argparse

import uvicorn

from server.app import build_server
from server.http import http_app
from server.logging import configure_logging
from server.settings import load_settings

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, metavar="PORT")
    args = parser.parse_args()
    settings = load_settings()
    configure_logging("WARNING")
    server = build_server(settings)

    @server.tool(description="Does nothing; the benchmark's baseline round trip.")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    if args.http:
        app = http_app(server, settings, "127.0.0.1")
        uvicorn.run(app, host="127.0.0.1", port=args.http, log_config=None, access_log=False)
    else:
        server.run()
