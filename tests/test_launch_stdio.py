"""A conversation over stdio with the real console script: the user's own HF_TOKEN pays, the
assistant asks before launching, follows the Job, and the user stops it; the token never
shows in what the server returns or logs."""

import json
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.fake_hub import serve_fake_hub
from tests.launch_support import TOKEN, finalized_draft, launch_settings
from tests.support import CONSOLE_SCRIPT, isolated_env
from tools.training_launcher import RUN_KEY_ENV

pytestmark = pytest.mark.slow  # spawns the console script over stdio


async def test_launch_follow_and_cancel_over_stdio_with_the_user_s_token(tmp_path: Path) -> None:
    draft_id, folder = await finalized_draft(launch_settings(tmp_path))
    errors = tmp_path / "stderr.log"
    with serve_fake_hub() as (hub, url), errors.open("w") as stderr:
        hub.add_account(TOKEN, "alice")
        env = isolated_env(
            tmp_path,
            HF_TOKEN=TOKEN,
            TRAINING_PACKAGE_MCP__MODELS__HUB__ENDPOINT=url,
            TRAINING_PACKAGE_MCP__DATASETS__ROOTS=json.dumps([str(tmp_path / "data")]),
        )
        server = StdioServerParameters(command=CONSOLE_SCRIPT, args=["serve"], env=env)
        async with Client(stdio_client(server, errlog=stderr)) as client:
            asked = await client.call_tool("launch_training", {"draft_id": draft_id})
            assert not asked.is_error and asked.structured_content["launched"] is False
            question = asked.structured_content["question"]
            started = await client.call_tool(
                "launch_training", {"draft_id": draft_id, "confirm": True}
            )
            assert not started.is_error, started.content
            (job,) = hub.jobs.values()
            key = job.spec["environment"][RUN_KEY_ENV]
            line = {"event": "progress", "run": key, "step": 3, "total_steps": 12, "loss": 2.0}
            hub.advance_job(job.id, "RUNNING", logs=[json.dumps(line)], running_secs=120)
            status = await client.call_tool("training_status", {"draft_id": draft_id})
            canceled = await client.call_tool("cancel_training", {"draft_id": draft_id})
    assert "paid by alice" in question and "a100-large" in question
    assert status.structured_content["progress"]["step"] == 3
    assert not canceled.is_error and job.stage == "CANCELED"
    limit = f"--max-hours {asked.structured_content['timeout_hours']}"
    assert job.spec["command"][-1].endswith(f"--push-to alice/{folder.name} {limit}")
    seen = json.dumps(
        [
            asked.structured_content,
            started.structured_content,
            status.structured_content,
            canceled.structured_content,
        ]
    )
    logged = errors.read_text()
    assert "training.launched" in logged and "training.canceled" in logged
    assert TOKEN not in seen and TOKEN not in logged and key not in seen
