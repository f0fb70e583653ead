"""The launcher and the real train.py together, as a user meets them: a package finalized with
the real tools (target: this machine) is started with launch_training over the in-memory MCP
surface, runs the package's own train.py in the training environment, and is followed with
training_status until it completes; a second run is canceled mid-way and leaves no process;
and the command a Hugging Face Job gets is run as the Job's machine would run it, downloading
the package from the fake Hub, training it and pushing the result.

The base model is the tiny stand-in of tiny_model.py, served by the fake Hub under the package's
own model id, so train.py runs exactly as launched (`python train.py`, no test flags).
Marked `training`: slow (a real training run), kept out of the fast suite.
"""

import json
import math
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client

from server.settings import Settings
from tests.fake_hub import FakeHub, serve_fake_hub
from tests.launch_support import client_for, live_group_members
from tests.test_package_mcp import call, complete_draft, package_settings, read_draft
from tests.training.test_train_package import (
    RUN_TIMEOUT_S,
    SAMPLES,
    TINY_MODEL,
    TOKEN,
    TRAIN_PYTHON,
    events,
    named,
    offline_cpu_env,
    run,
)
from tools.training_launcher import RUN_KEY_ENV

pytestmark = [
    pytest.mark.training,
    pytest.mark.skipif(
        not TRAIN_PYTHON.is_file(), reason=f"no training environment at {TRAIN_PYTHON}"
    ),
]

LOCAL_GPU = {"TRAINING_PACKAGE_MCP__DEPLOYMENT__LOCAL__GPU": "RTX-4090"}
POLL_S, DEADLINE_S = 0.5, 900  # a bound against a hang, not a speed requirement
# The run to cancel: far more steps (36 records x 100 epochs) than it trains before the cancel.
LONG_RUN = {"num_epochs": 100, "batch_size": 1, "gradient_accumulation_steps": 1}


def local_settings(tmp_path: Path) -> Settings:
    """Local runs with the training environment's Python, set as a user sets it: launch.yaml's
    local.python in their config overlay directory."""
    overlay = tmp_path / "config"
    overlay.mkdir(exist_ok=True)
    (overlay / "launch.yaml").write_text(yaml.safe_dump({"local": {"python": str(TRAIN_PYTHON)}}))
    return package_settings(
        tmp_path, SAMPLES, TRAINING_PACKAGE_MCP_CONFIG_DIR=str(overlay), **LOCAL_GPU
    )


async def sample_package(settings: Settings, target: str, **overrides: Any) -> tuple[str, Path]:
    """A draft on the bundled sample for `target`, finalized; its id and package folder."""
    async with client_for(settings, token=None) as client:
        draft_id = await complete_draft(
            client,
            datasets=("support_chat.jsonl",),
            target=target,
            overrides=overrides,
            validation_split=0.1,
        )
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    return draft_id, Path(written["path"])


@pytest.fixture
def hub_with_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The fake Hub, and the environment a local run inherits from the server pointed at it:
    no token (train.py then pushes nothing), no GPU, caches under tmp_path."""
    with serve_fake_hub() as (hub, url):
        for name, value in offline_cpu_env(tmp_path).items():
            monkeypatch.setenv(name, value)
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield hub


def serve_tiny_model(hub: FakeHub, folder: Path, tmp_path: Path) -> str:
    """The tiny model of the package's architecture, on the fake Hub as the package's model."""
    manifest = yaml.safe_load((folder / "package.yaml").read_text())
    tiny = tmp_path / "tiny-model"
    run(TINY_MODEL, folder, tiny, env=offline_cpu_env(tmp_path))
    model = hub.add_model(manifest["model"]["id"])
    model.files = {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()}
    return manifest["model"]["id"]


async def status_until(client: Client, draft_id: str, done: Any) -> dict[str, Any]:
    """training_status, polled until `done(status)` (bounded by DEADLINE_S)."""
    with anyio.fail_after(DEADLINE_S):
        while True:
            status = await call(client, "training_status", {"draft_id": draft_id})
            if done(status):
                return status
            await anyio.sleep(POLL_S)


def log_events(log: str) -> list[dict[str, Any]]:
    """train.py's JSON lines in its log, where its stdout and the trainer's stderr meet: a
    tqdm bar ends without a newline, so a JSON line may start behind one."""
    behind_bars = (line[line.find('{"event"') :] for line in log.splitlines() if '{"event"' in line)
    return events("\n".join(behind_bars))


def kill_groups(records: list[dict[str, Any]]) -> None:
    """However a test ends, its runs' process groups are gone afterwards."""
    for record in records:
        if record.get("pid") and live_group_members(record["pid"]):
            os.killpg(record["pid"], signal.SIGKILL)


async def test_a_local_launch_trains_the_package_and_is_followed_to_completion(
    tmp_path: Path, hub_with_the_model: FakeHub
) -> None:
    settings = local_settings(tmp_path)
    draft_id, folder = await sample_package(settings, "local")
    model_id = serve_tiny_model(hub_with_the_model, folder, tmp_path)
    runs: list[dict[str, Any]] = []
    try:
        async with client_for(settings, token=None) as client:
            started = await call(client, "launch_training", {"draft_id": draft_id, "confirm": True})
            runs.append(record := (await read_draft(client, draft_id))["launch"])
            final = await status_until(client, draft_id, lambda s: s["stage"] != "running")
            again = await call(client, "training_status", {"draft_id": draft_id})
            draft = await read_draft(client, draft_id)
            (rows,) = (await client.read_resource("package://calibration")).contents
        left = live_group_members(record["pid"])
    finally:
        kill_groups(runs)

    log = (folder / "logs" / "train.log").read_text()
    assert started["launched"] is True and started["where"] == "local", log[-3000:]
    assert final["stage"] == "completed", log[-3000:]
    assert hub_with_the_model.requests_to(f"/{model_id}/resolve/")  # the package's own model
    lines = log_events(log)
    (skipped,) = named(lines, "push_skipped")  # no token: trained and saved here
    assert "HF_TOKEN" in skipped["reason"]
    (start,) = named(lines, "start")
    last = named(lines, "progress")[-1]
    progress = final["progress"]
    # the status reads the real train.py's lines: every one with the run's key, shown nowhere
    assert {line["run"] for line in lines} == {start["run"]} and start["run"]
    assert start["run"] not in json.dumps([final, again, draft])
    assert progress["done"] is True and progress["total_steps"] == start["total_steps"]
    assert progress["step"] == last["step"] == start["total_steps"] and progress["percent"] == 100
    assert progress["loss"] == last["loss"] and math.isfinite(progress["loss"])
    assert progress["tokens_per_s"] == last["tokens_per_s"] and progress["tokens_per_s"] > 0
    assert final["next_action"] == f"done: the trained model is in {folder}/output"
    assert (folder / "output" / "adapter_model.safetensors").stat().st_size > 0
    assert left == []
    # the draft's record of the run, finished; one calibration row, however often status asks
    launch = draft["launch"]
    assert launch["stage"] == "completed" and launch["finished_at"] and launch["hours"] > 0
    assert launch["peak_memory_gb"] is None  # no CUDA: train.py reports no GPU memory
    assert again["stage"] == "completed"
    (row,) = json.loads(rows.text)  # type: ignore[union-attr]
    assert row["draft_id"] == draft_id and row["where"] == "local" and row["hours"] > 0


async def test_a_local_run_canceled_mid_way_leaves_no_process(
    tmp_path: Path, hub_with_the_model: FakeHub
) -> None:
    settings = local_settings(tmp_path)
    draft_id, folder = await sample_package(settings, "local", **LONG_RUN)
    serve_tiny_model(hub_with_the_model, folder, tmp_path)
    runs: list[dict[str, Any]] = []
    try:
        async with client_for(settings, token=None) as client:
            await call(client, "launch_training", {"draft_id": draft_id, "confirm": True})
            runs.append(record := (await read_draft(client, draft_id))["launch"])
            training = await status_until(
                client,
                draft_id,
                lambda s: s["stage"] != "running" or s["progress"]["step"] is not None,
            )
            canceled = await call(client, "cancel_training", {"draft_id": draft_id})
            left = live_group_members(record["pid"])
            after = await call(client, "training_status", {"draft_id": draft_id})
            draft = await read_draft(client, draft_id)
            # the user goes on: it saved no checkpoint yet (save_steps is far ahead)
            arguments = {"draft_id": draft_id, "confirm": True, "resume": True}
            await call(client, "launch_training", arguments)
            runs.append((await read_draft(client, draft_id))["launch"])
            resumed = await status_until(client, draft_id, lambda s: s["stage"] != "running")
    finally:
        kill_groups(runs)

    log = (folder / "logs" / "train.log").read_text()
    assert training["stage"] == "running", log[-3000:]
    assert training["progress"]["step"] < training["progress"]["total_steps"]
    assert canceled["stage"] == "canceled"
    assert left == []  # train.py and anything it started
    assert after["stage"] == "canceled" and draft["launch"]["canceled_by_user"] is True
    assert not named(log_events(log), "done")
    # train.py said there is nothing to resume; status does not send the user round again
    assert resumed["stage"] == "error"
    assert resumed["progress"]["error"].startswith("nothing to resume: no checkpoint in ")
    assert "without resume starts it over" in resumed["next_action"]
    assert "resume=true" not in resumed["next_action"]


PIP_STAND_IN = """#!/bin/sh
# pip in the Job's image; here the training environment already holds the pinned versions, so
# each call is only recorded (its folder and arguments), never run against the shared venv.
echo "$PWD $*" >> "$PIP_CALLS"
"""


def job_machine(tmp_path: Path) -> Path:
    """A PATH folder standing for the Job's image: its python and the Hub's `hf` CLI from the
    training environment, and pip recorded (PIP_STAND_IN)."""
    bin_dir = tmp_path / "job-bin"
    bin_dir.mkdir()
    for name in ("python", "hf"):
        target = shlex.quote(str(TRAIN_PYTHON.parent / name))
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
    (bin_dir / "pip").write_text(PIP_STAND_IN)
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)
    return bin_dir


async def test_the_hub_job_command_downloads_the_package_and_trains_it(tmp_path: Path) -> None:
    """The Job's command as the launcher builds it for a real package, run here as the Job's
    machine would run it (its secrets as environment): it downloads the package's private repo
    from the fake Hub, installs its requirements and trains it with the package's train.py,
    which pushes the trained adapter to package.yaml's hub.model_repo in the token's account."""
    draft_id, folder = await sample_package(package_settings(tmp_path, SAMPLES), "a100-large")
    manifest = yaml.safe_load((folder / "package.yaml").read_text())
    model_repo = f"alice/{manifest['hub']['model_repo']}"
    workdir = tmp_path / "job" / "package"
    with serve_fake_hub() as (hub, url):
        hub.add_account(TOKEN, "alice")
        settings = package_settings(
            tmp_path,
            SAMPLES,
            TRAINING_PACKAGE_MCP__MODELS__HUB__ENDPOINT=url,
            TRAINING_PACKAGE_MCP__LAUNCH__HUB__WORKDIR=str(workdir),
        )
        async with client_for(settings, token=TOKEN) as client:
            await call(client, "launch_training", {"draft_id": draft_id, "confirm": True})
        (job,) = hub.jobs.values()
        serve_tiny_model(hub, folder, tmp_path)
        env = {k: v for k, v in offline_cpu_env(tmp_path).items() if k != "HF_HUB_OFFLINE"}
        env |= {
            "PATH": f"{job_machine(tmp_path)}{os.pathsep}{os.environ['PATH']}",
            "HF_ENDPOINT": url,
            "PIP_CALLS": str(tmp_path / "pip-calls.txt"),
            **(job.spec.get("environment") or {}),
            **job.spec["secrets"],
        }
        ran = subprocess.run(
            job.spec["command"],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        pushed = hub.created_repos.get(f"model/{model_repo}")

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-5000:]
    assert job.spec["secrets"] == {"HF_TOKEN": TOKEN}
    # the package, downloaded whole from its repo (what it runs is what was finalized)
    packaged = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    downloaded = {
        p.relative_to(workdir): p.read_bytes()
        for p in workdir.rglob("*")
        if p.is_file()
        and not p.relative_to(workdir).parts[0].startswith(".")
        and p.relative_to(workdir).parts[0] != "output"
    }
    assert downloaded == packaged
    client_install, requirements_install = (tmp_path / "pip-calls.txt").read_text().splitlines()
    assert client_install.endswith("install --quiet --no-cache-dir huggingface_hub>=1.0")
    requirements = manifest["files"]["requirements"]
    assert requirements_install == f"{workdir} install --quiet --no-cache-dir -r {requirements}"
    # trained by the package's own train.py, pushed where package.yaml says
    lines = events(ran.stdout)
    assert {line["run"] for line in lines} == {job.spec["environment"][RUN_KEY_ENV]}
    assert not named(lines, "push_skipped")
    (start,), (done,) = named(lines, "start"), named(lines, "done")
    assert start["model_repo"] == done["model_repo"] == model_repo
    assert done["steps"] == start["total_steps"] == named(lines, "progress")[-1]["step"]
    assert pushed is not None and "adapter_model.safetensors" in pushed["files"]
    assert pushed["commits"][-1]["summary"] == f"Trained model, step {done['steps']}"
