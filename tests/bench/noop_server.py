"""The real server plus a no-op tool, over stdio: the baseline the stdio benchmarks compare with."""

from server.app import build_server
from server.logging import configure_logging
from server.settings import load_settings

if __name__ == "__main__":
    settings = load_settings()
    configure_logging("WARNING")
    server = build_server(settings)

    @server.tool(description="Does nothing; the benchmark's baseline round trip.")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    server.run()
