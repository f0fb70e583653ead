"""`serve --http`: streamable HTTP on loopback, refused elsewhere while there is no auth."""

import socket
import subprocess
import time
from pathlib import Path

from mcp import Client

from tests.support import CONSOLE_SCRIPT, isolated_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not start listening")


async def test_serve_http_answers_an_mcp_client(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [CONSOLE_SCRIPT, "serve", "--http", "--host", "127.0.0.1", "--port", str(port)],
        env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            created = await client.call_tool("create_draft", {"title": "over http"})
            assert not created.is_error
            assert created.structured_content["uri"].startswith("package://drafts/")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_http_refuses_a_public_address_without_auth(tmp_path: Path) -> None:
    result = subprocess.run(
        [CONSOLE_SCRIPT, "serve", "--http", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=isolated_env(tmp_path),
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert "binds only to a loopback address" in result.stderr
