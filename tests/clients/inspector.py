"""CI: the MCP Inspector CLI against the stdio server — strict tools/list, then one call per
tool, a resource read and the prompt, each a fresh server process sharing one drafts database.

Run: uv run python -m tests.clients.inspector
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.clients.node_tools import ROOT, install
from tests.support import CONSOLE_SCRIPT, isolated_env

SAMPLE_DATASET = "samples/support_chat.jsonl"


class Inspector:
    def __init__(self, bin_dir: Path, env: dict[str, str], cwd: Path):
        # The Inspector starts the server with a bare environment of its own: hand over the
        # settings that isolate it (drafts database, caches, package root, offline) with -e.
        passed = [
            arg
            for key, value in env.items()
            if key.startswith(("TRAINING_PACKAGE_MCP", "HF_"))
            for arg in ("-e", f"{key}={value}")
        ]
        self.command = [str(bin_dir / "mcp-inspector"), "--cli", *passed, "--cwd", str(cwd)]
        self.env = env

    def run(self, *args: str, strict: bool = False) -> dict:
        command = [*self.command, *(["--strict"] if strict else []), CONSOLE_SCRIPT, "serve", *args]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300)
        label = " ".join(args[:4])
        if result.returncode != 0:
            raise SystemExit(f"inspector {label} failed:\n{result.stdout}\n{result.stderr}")
        print(f"ok  {label}")
        return json.loads(result.stdout)

    def call(self, tool: str, **arguments: object) -> dict:
        result = self._call(tool, arguments)
        if result.get("isError"):
            raise SystemExit(f"{tool} returned an error: {result['content']}")
        return result["structuredContent"]

    def refused(self, tool: str, reason: str, **arguments: object) -> None:
        """A call the server must refuse: an isError result whose text says `reason` (the
        Inspector CLI prints the result and exits non-zero)."""
        command = [*self.command, CONSOLE_SCRIPT, "serve", *_call_args(tool, arguments)]
        result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300)
        try:
            answer = json.loads(result.stdout)
        except ValueError:
            raise SystemExit(f"{tool}: no result:\n{result.stdout}\n{result.stderr}") from None
        text = " ".join(block.get("text", "") for block in answer.get("content", []))
        if not answer.get("isError") or reason not in text:
            raise SystemExit(f"{tool} should have been refused saying '{reason}': {answer}")
        print(f"ok  {tool} refused: {reason}")

    def _call(self, tool: str, arguments: dict[str, object]) -> dict:
        return self.run(*_call_args(tool, arguments))


def _call_args(tool: str, arguments: dict[str, object]) -> tuple[str, ...]:
    args = ["--method", "tools/call", "--tool-name", tool]
    for key, value in arguments.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += ["--tool-arg", f"{key}={text}"]
    return tuple(args)


def main() -> int:
    bin_dir = install()
    with tempfile.TemporaryDirectory() as tmp:
        env = isolated_env(
            Path(tmp),
            HF_HUB_OFFLINE="1",
            HOME=tmp,
            TRAINING_PACKAGE_MCP__PACKAGE__OUTPUT__ROOT=str(Path(tmp) / "packages"),
        )
        inspector = Inspector(bin_dir, env, ROOT)
        listed = inspector.run("--method", "tools/list", strict=True)
        database = Path(env["TRAINING_PACKAGE_MCP__SERVER__STORAGE__SQLITE__PATH"])
        tools = {tool["name"] for tool in listed["tools"]}
        draft = inspector.call("create_draft", title="inspector")["draft_id"]
        calls = {
            "search_models": {"max_params_b": 1},
            "select_model": {"draft_id": draft, "model_id": "Qwen/Qwen2.5-0.5B-Instruct"},
            "apply_template": {
                "template": "lora",
                "draft_id": draft,
                "overrides": {"max_seq_length": 512},
            },
            "list_datasets": {},
            "validate_datasets": {"datasets": [SAMPLE_DATASET], "draft_id": draft},
            "estimate_deployment": {"draft_id": draft},
            "get_draft": {"draft_id": draft},
        }
        for tool, arguments in calls.items():
            inspector.call(tool, **arguments)
        plan = inspector.call("estimate_deployment", draft_id=draft)
        inspector.call("estimate_deployment", draft_id=draft, select=plan["recommended"])
        # the Inspector CLI cannot answer elicitation: confirm the warnings in the call itself
        package = inspector.call("finalize_package", draft_id=draft, accept_warnings=True)
        if not package["written"]:
            raise SystemExit(f"finalize_package wrote nothing: {package['next_action']}")
        # No Hub is reachable and no token is set here: launching must say so, and there is no
        # run to follow or stop yet (tests/test_launch_*.py run them against a stand-in Hub).
        refusals = {
            "launch_training": "No Hugging Face token",
            "training_status": "has not been launched",
            "cancel_training": "has not been launched",
        }
        for tool, reason in refusals.items():
            arguments = {"confirm": True} if tool == "launch_training" else {}
            inspector.refused(tool, reason, draft_id=draft, **arguments)
        done = {"create_draft", "finalize_package", "delete_draft", *calls, *refusals}
        missing = tools - done
        if missing:
            raise SystemExit(f"no call prepared for: {', '.join(sorted(missing))}")
        inspector.run("--method", "resources/read", "--uri", f"package://drafts/{draft}")
        inspector.call("delete_draft", draft_id=draft)  # the package stays
        if not database.exists() or not (Path(tmp) / "packages").is_dir():
            raise SystemExit("the server did not use the isolated drafts database and package root")
        inspector.run(
            "--method",
            "prompts/get",
            "--prompt-name",
            "training_wizard",
            "--prompt-args",
            "goal=a support bot",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
