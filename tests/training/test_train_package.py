"""The proof that a package trains: a draft built with the real tools is finalized, then the
package's own train.py runs two optimizer steps on the CPU, on the package's own data, with a
tiny randomly initialised model of the selected architecture family (no download).

Every template is proven: lora, full, dpo and kto train; qlora, whose 4-bit base needs CUDA,
refuses the CPU with the reason, as its package promises. Each run prints the JSON lines a
launcher follows (start, progress, checkpoint, push_skipped without a token, done); with a
token it pushes its checkpoints and the trained adapter to a private repo on the fake Hub; a
stopped run resumes from its last checkpoint, saved locally or downloaded from the Hub repo.

Runs in the training environment, whose Python is .venv-train/bin/python (or the one
$TRAINING_PACKAGE_TRAIN_PYTHON names); tests/training/requirements.txt says how to make it.
Marked `training`: slow (tens of seconds per case), so kept out of the fast suite.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_hub import serve_fake_hub
from tests.support import connect
from tests.test_package_mcp import DATA, call, complete_draft, package_settings

REPO = Path(__file__).parents[2]
TRAIN_PYTHON = Path(
    os.environ.get("TRAINING_PACKAGE_TRAIN_PYTHON") or REPO / ".venv-train" / "bin" / "python"
)
TINY_MODEL = Path(__file__).with_name("tiny_model.py")
SAMPLES = REPO / "samples"
STEPS = 2
RUN_TIMEOUT_S = 600

pytestmark = [
    pytest.mark.training,
    pytest.mark.skipif(
        not TRAIN_PYTHON.is_file(),
        reason=f"no training environment at {TRAIN_PYTHON}: create it as "
        "tests/training/requirements.txt says, or set TRAINING_PACKAGE_TRAIN_PYTHON",
    ),
]


def run(*args: object, env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run a command in the training environment; killed if it outlives RUN_TIMEOUT_S."""
    completed = subprocess.run(
        [str(TRAIN_PYTHON), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != expect:
        sys.stderr.write(completed.stdout[-5000:] + completed.stderr[-10000:])
    assert completed.returncode == expect, f"{args[0]} exited with {completed.returncode}"
    return completed


def offline_cpu_env(tmp_path: Path) -> dict[str, str]:
    """No network, no GPU, caches under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRAINING_PACKAGE"))}
    env.update(
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        CUDA_VISIBLE_DEVICES="",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def kto_conversations(root: Path) -> Path:
    """KTO data in TRL's conversational unpaired layout (dataset_formats.md: a prompt and a
    completion as message lists, a boolean label), from the test data's questions and answers."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for line in (DATA / "unpaired_preference.jsonl").read_text().splitlines():
        record = json.loads(line)
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": "You answer kitchen questions."},
                    {"role": "user", "content": record["prompt"]},
                ],
                "completion": [{"role": "assistant", "content": record["completion"]}],
                "label": record["label"],
            }
        )
    path = root / "kto_conversations.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root


WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def tool_chat(root: Path) -> Path:
    """Tool-calling chat as OpenAI documents it (tool_calls with JSON-text arguments, tool
    messages, a tools list) and as LLaMA-Factory v1 does (typed parts, reasoning, tool_call)."""
    root.mkdir()
    records = []
    for i in range(24):
        city, answer = f"City {i}", f"It is {i} degrees in City {i}."
        question = {"role": "user", "content": f"How warm is it in {city}?"}
        if i % 2:
            call = {"name": "weather", "arguments": json.dumps({"city": city})}
            calling = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": f"call_{i}", "type": "function", "function": call}],
            }
            result = {"role": "tool", "tool_call_id": f"call_{i}", "content": f"{i} C"}
            records.append(
                {
                    "messages": [
                        question,
                        calling,
                        result,
                        {"role": "assistant", "content": answer},
                    ],
                    "tools": [WEATHER],
                }
            )
        else:
            value = json.dumps({"name": "weather", "arguments": {"city": city}})
            calling = {
                "role": "assistant",
                "content": [
                    {"type": "reasoning", "value": "The tool knows."},
                    {"type": "tool_call", "value": value},
                ],
            }
            result = {"role": "tool", "content": [{"type": "text", "value": f"{i} C"}]}
            final = {"role": "assistant", "content": [{"type": "text", "value": answer}]}
            records.append({"messages": [question, calling, result, final]})
    (root / "tool_chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


RENDER = """
import json, sys
from datasets import load_dataset
from transformers import AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[2])
for record in load_dataset("json", data_files=sys.argv[1])["train"]:
    print(json.dumps(tokenizer.apply_chat_template(
        record["messages"], tools=record["tools"], tokenize=False)))
"""
"""Each packaged record as the tiny model's chat template renders it, read as train.py reads
the data (datasets' JSON loader)."""


def events(stdout: str) -> list[dict[str, Any]]:
    """The machine-readable lines of a run, as a launcher reads them: JSON objects whose first
    key is "event"."""
    found = []
    for line in stdout.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and next(iter(value), None) == "event":
            found.append(value)
    return found


def named(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == event]


async def package_for(
    tmp_path: Path,
    template: str,
    root: Path,
    dataset: str,
    overrides: dict[str, Any] | None = None,
    **settings: str,
) -> Path:
    """A package finalized from a draft built with the real tools (`overrides`: the template's
    values changed; `settings`: config values from the environment)."""
    async with connect(package_settings(tmp_path, root, **settings)) as client:
        draft_id = await complete_draft(
            client,
            template=template,
            datasets=(dataset,),
            validation_split=0.1,
            overrides=overrides,
        )
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    return Path(written["path"])


FULL = {"adapter": "none"}


@pytest.mark.parametrize(
    ("template", "root", "dataset", "trainer", "overrides"),
    [
        ("lora", SAMPLES, "support_chat.jsonl", "SFTTrainer", {}),  # the bundled sample
        ("lora", DATA, "prompt_completion.csv", "SFTTrainer", {}),
        ("full", SAMPLES, "support_chat.jsonl", "SFTTrainer", {}),
        ("dpo", DATA, "preference_conversational.jsonl", "DPOTrainer", {}),
        ("dpo", DATA, "preference_conversational.jsonl", "DPOTrainer", FULL),  # its own reference
        ("kto", DATA, "unpaired_preference.jsonl", "KTOTrainer", {}),
        ("kto", kto_conversations, "kto_conversations.jsonl", "KTOTrainer", {}),
        ("lora", tool_chat, "tool_chat.jsonl", "SFTTrainer", {}),
    ],
)
async def test_the_package_trains_two_steps_on_the_cpu(
    tmp_path: Path,
    template: str,
    root: Path | Callable[[Path], Path],
    dataset: str,
    trainer: str,
    overrides: dict[str, Any],
) -> None:
    if callable(root):
        root = root(tmp_path / "data")
    if not (root / dataset).is_file():
        pytest.skip(f"{root / dataset} is not in this checkout")
    package = await package_for(tmp_path, template, root, dataset, overrides)
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    trl = yaml.safe_load((package / manifest["files"]["trl_config"]).read_text())
    assert trl["trainer"] == trainer

    env = offline_cpu_env(tmp_path)
    tiny, out = tmp_path / "tiny-model", tmp_path / "run"
    built = json.loads(run(TINY_MODEL, package, tiny, env=env).stdout.strip().splitlines()[-1])
    assert built["model_type"] == manifest["model"]["architecture"]["model_type"]
    if dataset == "tool_chat.jsonl":
        train_file = package / manifest["data"]["train"]["path"]
        rendered = run("-c", RENDER, train_file, tiny, env=env).stdout.splitlines()
        texts = [json.loads(line) for line in rendered]
        assert len(texts) == manifest["data"]["train"]["records"]
        assert all('<tool_call>{"name": "weather", "arguments": {"city": "City' in t for t in texts)
        assert sum('"name": "weather", "description"' in t for t in texts) == len(
            [r for r in map(json.loads, train_file.read_text().splitlines()) if r.get("tools")]
        )
    trained = run(
        package / manifest["files"]["train_script"],
        "--model",
        tiny,
        "--max-steps",
        STEPS,
        "--output-dir",
        out,
        env=env,
    )

    assert "training on CPU" in trained.stdout
    assert "no CUDA GPU: bf16 mixed precision off, training in float32" in trained.stdout
    # full DPO: train.py's reference copy, in what this machine computes in
    reference = "note: reference model: a frozen copy in float32"
    assert (reference in trained.stdout) is (trl["reference_in_compute_dtype"] is True)
    assert trl["reference_in_compute_dtype"] is (overrides == FULL)
    assert_reported(events(trained.stdout), STEPS)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["global_step"] == STEPS and math.isfinite(summary["train_loss"])
    # the trainer's own record of the run, in its last checkpoint
    state = json.loads((out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS and state["max_steps"] == STEPS
    values = manifest["config"]["values"]
    if values["adapter"] == "none":  # full fine-tuning saves the whole model
        assert not (out / "adapter_config.json").exists()
        assert (out / "model.safetensors").stat().st_size > 0
        return
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == values["lora_r"]
    assert adapter["lora_alpha"] == values["lora_alpha"]
    assert (out / "adapter_model.safetensors").stat().st_size > 0


def assert_reported(lines: list[dict[str, Any]], steps: int, first_step: int = 1) -> None:
    """The lines of a run without a Hub token that trained steps first_step..steps, logging and
    saving at every step."""
    skipped, start, *progress, checkpoint, done = lines
    assert skipped["event"] == "push_skipped" and "HF_TOKEN" in skipped["reason"]
    assert start == {"event": "start", "total_steps": steps, "model_repo": None}
    trained = range(first_step, steps + 1)
    assert [line["event"] for line in progress] == ["progress"] * len(trained)
    assert [line["step"] for line in progress] == list(trained)
    for line in progress:
        assert line["total_steps"] == steps and math.isfinite(line["loss"])
        assert line["learning_rate"] >= 0 and line["epoch"] > 0
        assert line["tokens_per_s"] > 0  # the trainer's own count of the tokens it trained on
    assert checkpoint == {"event": "checkpoint", "step": steps, "pushed": False}
    assert done["event"] == "done" and done["steps"] == steps and done["model_repo"] is None
    assert done["max_memory_allocated_gb"] is None and done["runtime_s"] >= 0  # no CUDA here


async def test_a_qlora_package_refuses_a_machine_without_cuda(tmp_path: Path) -> None:
    """QLoRA loads the base in 4-bit through bitsandbytes, which needs CUDA: on the CPU the
    package's train.py stops before loading anything, and says what to do."""
    package = await package_for(tmp_path, "qlora", SAMPLES, "support_chat.jsonl")
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    refused = run(
        package / manifest["files"]["train_script"],
        "--max-steps",
        STEPS,
        env=offline_cpu_env(tmp_path),
        expect=1,
    )
    assert events(refused.stdout)[-1] == {
        "event": "error",
        "message": "This package trains QLoRA: the base model loads in 4-bit through "
        "bitsandbytes, which needs an NVIDIA GPU with CUDA, and none is available. Run it on a "
        "CUDA machine (package.yaml names the planned one), or build a package with the lora "
        "template to train here.",
    }
    assert not (package / "output").exists()


async def resumable_package(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """The bundled sample's lora package, saving a checkpoint at every step; its train.py,
    the tiny model it trains, and the offline environment."""
    package = await package_for(
        tmp_path,
        "lora",
        SAMPLES,
        "support_chat.jsonl",
        TRAINING_PACKAGE_MCP__PACKAGE__HUB__SAVE_STEPS="1",
    )
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    assert manifest["hub"]["save_steps"] == 1 and manifest["hub"]["private"] is True
    env, tiny = offline_cpu_env(tmp_path), tmp_path / "tiny-model"
    run(TINY_MODEL, package, tiny, env=env)
    return package / manifest["files"]["train_script"], tiny, env


def losses(lines: list[dict[str, Any]]) -> dict[int, float]:
    return {line["step"]: line["loss"] for line in named(lines, "progress")}


async def test_a_stopped_run_resumes_from_its_last_local_checkpoint(tmp_path: Path) -> None:
    script, tiny, env = await resumable_package(tmp_path)
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    uninterrupted = events(
        run(script, "--model", tiny, "--max-steps", STEPS, "--output-dir", whole, env=env).stdout
    )
    assert [(c["step"], c["pushed"]) for c in named(uninterrupted, "checkpoint")] == [
        (1, False),
        (2, False),
    ]
    # stopped after its first save: the output holds checkpoint-1 alone
    shutil.copytree(whole / "checkpoint-1", stopped / "checkpoint-1")

    resumed = run(
        script, "--model", tiny, "--max-steps", STEPS, "--output-dir", stopped, "--resume", env=env
    )

    assert f"note: resuming from {stopped / 'checkpoint-1'}" in resumed.stdout
    lines = events(resumed.stdout)
    assert_reported(lines, STEPS, first_step=2)
    # the same second step as the run that never stopped: weights, optimizer, data order, seed
    assert losses(lines)[2] == pytest.approx(losses(uninterrupted)[2], rel=1e-4)
    state = json.loads((stopped / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2]


async def test_a_run_resumes_from_the_hub_repos_last_checkpoint(tmp_path: Path) -> None:
    """Nothing saved here (a new machine): the checkpoint the run pushed comes back from the
    Hub repo's last-checkpoint/ folder."""
    script, tiny, env = await resumable_package(tmp_path)
    first = tmp_path / "first"
    run(script, "--model", tiny, "--max-steps", 1, "--output-dir", first, env=env)
    checkpoint = first / "checkpoint-1"
    with serve_fake_hub() as (hub, url):
        repo = hub.add_model("me/support-bot")
        repo.files = {
            f"last-checkpoint/{path.relative_to(checkpoint).as_posix()}": path.read_bytes()
            for path in checkpoint.rglob("*")
            if path.is_file()
        }
        online = {k: v for k, v in env.items() if k != "HF_HUB_OFFLINE"} | {"HF_ENDPOINT": url}
        resumed = run(
            script,
            "--model",
            tiny,
            "--max-steps",
            STEPS,
            "--output-dir",
            tmp_path / "second",
            "--resume",
            "--push-to",
            "me/support-bot",
            env=online,
        )
        downloaded = hub.requests_to("/me/support-bot/resolve/")

    assert downloaded and all("/last-checkpoint/" in path for path in downloaded)
    assert "note: resuming from" in resumed.stdout
    assert_reported(events(resumed.stdout), STEPS, first_step=2)
    state = json.loads((tmp_path / "second" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == STEPS


TOKEN = "hf_alice_write"


def online(env: dict[str, str], url: str, home: Path) -> dict[str, str]:
    """`env` reaching the fake Hub at `url` with alice's write token, its cache in `home`."""
    reach = {k: v for k, v in env.items() if k != "HF_HUB_OFFLINE"}
    return reach | {"HF_ENDPOINT": url, "HF_TOKEN": TOKEN, "HF_HOME": str(home)}


async def test_a_run_with_a_token_pushes_to_a_private_repo_and_resumes_from_it(
    tmp_path: Path,
) -> None:
    """The push for real, against the fake Hub: the repo named in package.yaml lands in the
    token owner's account (whoami), private; each save's checkpoint goes to last-checkpoint/,
    the trained adapter to the repo's root at the end; a new machine resumes from the Hub."""
    script, tiny, env = await resumable_package(tmp_path)
    manifest = yaml.safe_load((script.parent / "package.yaml").read_text())
    repo_id = f"alice/{manifest['hub']['model_repo']}"
    with serve_fake_hub() as (hub, url):
        hub.add_account(TOKEN, "alice")
        first = tmp_path / "first"
        pushed = events(
            run(
                script,
                "--model",
                tiny,
                "--max-steps",
                STEPS,
                "--output-dir",
                first,
                env=online(env, url, tmp_path / "home-1"),
            ).stdout
        )
        created = hub.created_repos[f"model/{repo_id}"]
        files, commits = dict(created["files"]), list(created["commits"])
        saved = [c["step"] for c in named(pushed, "checkpoint") if c["pushed"]]

        second = tmp_path / "second"  # a fresh machine: no output, an empty Hub cache
        resumed = run(
            script,
            "--model",
            tiny,
            "--max-steps",
            STEPS + 1,
            "--output-dir",
            second,
            "--resume",
            env=online(env, url, tmp_path / "home-2"),
        )
        downloaded = hub.requests_to(f"/{repo_id}/resolve/")

    assert hub.requests_to("/api/whoami-v2")  # the owner of a repo named without one
    assert created.get("private") is True or created.get("visibility") == "private"
    assert named(pushed, "start")[0]["model_repo"] == repo_id
    assert named(pushed, "done")[0]["model_repo"] == repo_id
    assert not named(pushed, "push_skipped") and saved and saved[0] == 1
    # the last pushed checkpoint, whole, in last-checkpoint/
    state = json.loads(files["last-checkpoint/trainer_state.json"])
    assert state["global_step"] == saved[-1]
    checkpoint = first / f"checkpoint-{saved[-1]}"
    for name in ("adapter_model.safetensors", "optimizer.pt", "adapter_config.json"):
        assert files[f"last-checkpoint/{name}"] == (checkpoint / name).read_bytes()
    # the trained adapter, the last commit, at the repo's root
    final = commits[-1]
    assert final["summary"] == f"Trained model, step {STEPS}"
    assert "adapter_model.safetensors" in final["paths"]
    assert files["adapter_model.safetensors"] == (first / "adapter_model.safetensors").read_bytes()
    assert not any(path.startswith("checkpoint-") for path in files)

    assert "note: resuming from" in resumed.stdout and not list(second.glob("checkpoint-1"))
    assert downloaded and all("/last-checkpoint/" in path for path in downloaded)
    lines = events(resumed.stdout)
    assert [p["step"] for p in named(lines, "progress")] == list(range(saved[-1] + 1, STEPS + 2))
    (done,) = named(lines, "done")
    assert done["model_repo"] == repo_id and done["steps"] == STEPS + 1
    assert created["commits"][-1]["summary"] == f"Trained model, step {STEPS + 1}"


async def test_a_run_stops_itself_at_its_time_limit_with_a_checkpoint(tmp_path: Path) -> None:
    """--max-hours (the launcher passes the run's time limit): the step that passes it is saved,
    even between the package's save steps, the run ends with an error line and exit status 3,
    and --resume goes on from that checkpoint."""
    package = await package_for(tmp_path, "lora", SAMPLES, "support_chat.jsonl")
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    assert manifest["hub"]["save_steps"] > STEPS  # no checkpoint but the time limit's
    script = package / manifest["files"]["train_script"]
    env, tiny, output = offline_cpu_env(tmp_path), tmp_path / "tiny-model", tmp_path / "out"
    run(TINY_MODEL, package, tiny, env=env)
    limited = ["--model", tiny, "--max-steps", STEPS, "--output-dir", output]

    stopped = events(run(script, *limited, "--max-hours", "1e-9", env=env, expect=3).stdout)

    assert [line["step"] for line in named(stopped, "checkpoint")] == [1]
    assert named(stopped, "done") == []
    saved = output / "checkpoint-1"
    assert stopped[-1]["event"] == "error" and stopped[-1]["message"].startswith(
        f"time limit: stopped after 1e-09 h at step 1, its checkpoint saved in {saved}"
    )
    assert (saved / "trainer_state.json").is_file()
    resumed = events(run(script, *limited, "--resume", env=env).stdout)
    assert named(resumed, "done")[0]["steps"] == STEPS
