"""CI: run the MCP conformance suite against the server over streamable HTTP.

Run: uv run python -m tests.clients.conformance
The suite runs once per HTTP mode the server offers: stateful (sessions) and stateless (the
default, so replicas can share the load). Each run exits non-zero when a scenario fails that
its expected-failures file does not list (only scenarios needing the reference server's own
fixtures, plus, for stateless, the one about a session's several streams), or when a listed
scenario passes.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from tests.clients.node_tools import install, node22_path
from tests.support import http_server, isolated_env

HERE = Path(__file__).resolve().parent
MODES = {
    "stateful": "conformance-expected-failures.yml",
    "stateless": "conformance-expected-failures.stateless.yml",
}


def run(bin_dir: Path, mode: str, baseline: str) -> int:
    print(f"=== conformance, {mode} HTTP ===", flush=True)
    stateless = "true" if mode == "stateless" else "false"
    with tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(
            Path(tmp),
            HF_HUB_OFFLINE="1",
            TRAINING_PACKAGE_MCP__SERVER__TRANSPORT__HTTP__STATELESS=stateless,
        )
        with http_server(env, "--host", "127.0.0.1") as url:
            command = [
                str(bin_dir / "conformance"),
                "server",
                "--url",
                f"{url}/mcp",
                "--suite",
                "active",
                "--expected-failures",
                str(HERE / baseline),
            ]
            env = {"PATH": node22_path(), "HOME": tmp}
            return subprocess.run(command, env=env, timeout=900).returncode


def main() -> int:
    bin_dir = install()
    outcomes = {mode: run(bin_dir, mode, baseline) for mode, baseline in MODES.items()}
    print(", ".join(f"{mode}: {'pass' if rc == 0 else 'FAIL'}" for mode, rc in outcomes.items()))
    return max(outcomes.values())


if __name__ == "__main__":
    sys.exit(main())
