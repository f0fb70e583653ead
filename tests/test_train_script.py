"""The package's train.py without torch: its machine decisions, the Hub repo it pushes to, the
trainer arguments that save and push checkpoints, the checkpoint it resumes from, its JSON
lines, and its refusals, which come before anything heavy is imported (the fast suite's Python
has no torch). Training itself is proven in tests/training."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import yaml
from huggingface_hub import constants

from server.settings import Settings, load_settings
from tests.fake_hub import Repo, serve_fake_hub
from tests.support import isolated_env
from tests.test_package_builder import DATA, build, make_inputs
from tools.training_launcher import checkpoints

TRAIN_SCRIPT = Path(__file__).parents[1] / "tools" / "package_builder" / "files" / "train.py"
RUN_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def train_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_train_script", TRAIN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export(**args: Any) -> dict[str, Any]:
    base = {"bf16": True, "fp16": False, "optim": "adamw_torch_fused"}
    return {
        "args": {**base, "model_init_kwargs": {"dtype": "bfloat16"}, **args},
        "quantization_config": None,
    }


# --- machine decisions --------------------------------------------------------------------------


def test_on_a_cpu_training_runs_in_float32(train_script: ModuleType) -> None:
    args, notes = train_script.fit_to_machine(export(optim="paged_adamw_8bit"), False, False)
    assert (args["bf16"], args["fp16"]) == (False, False)
    assert args["model_init_kwargs"]["dtype"] == "float32"
    assert args["optim"] == "adamw_torch"
    assert len(notes) == 3 and all(notes)


def test_a_gpu_without_bf16_trains_in_fp16(train_script: ModuleType) -> None:
    args, notes = train_script.fit_to_machine(export(), True, False)
    assert (args["bf16"], args["fp16"]) == (False, True) and "fp16" in notes[0]
    assert args["model_init_kwargs"]["dtype"] == "float16"
    assert args["optim"] == "adamw_torch_fused"
    unchanged, none = train_script.fit_to_machine(export(), True, True)
    assert unchanged["bf16"] is True and none == []


def test_qlora_without_cuda_stops_with_a_reason(train_script: ModuleType) -> None:
    qlora = {**export(), "quantization_config": {"load_in_4bit": True}}
    with pytest.raises(train_script.Stop, match="needs an NVIDIA GPU with CUDA") as exc:
        train_script.fit_to_machine(qlora, False, False)
    assert exc.value.code == train_script.EXIT_FAILED


# --- the Hub repo and the trainer arguments -----------------------------------------------------

HUB = {"model_repo": "support-bot-d1", "private": True, "save_steps": 50, "keep_checkpoints": 2}


def test_a_run_with_a_repo_pushes_every_checkpoint_privately(train_script: ModuleType) -> None:
    options = train_script.parse_args(["--push-to", "me/bot", "--resume", "--max-steps", "9"])
    assert (options.push_to, options.resume, options.max_steps) == ("me/bot", True, 9)
    args, _ = train_script.trainer_arguments(export(), HUB, "me/bot", options, True, True)
    assert args["save_strategy"] == "steps" and args["save_steps"] == 50
    assert args["save_total_limit"] == 2  # a long run cannot fill the disk with checkpoints
    assert args["push_to_hub"] is True and args["hub_model_id"] == "me/bot"
    assert args["hub_private_repo"] is True and args["hub_strategy"] == "checkpoint"
    assert args["max_steps"] == 9


def test_a_run_without_a_repo_saves_but_pushes_nothing(train_script: ModuleType) -> None:
    options = train_script.parse_args([])
    assert options.push_to is None and options.resume is False
    args, _ = train_script.trainer_arguments(export(), HUB, None, options, True, True)
    assert args["save_steps"] == 50 and "push_to_hub" not in args and "hub_model_id" not in args
    # a package written before the hub section keeps the trainer's own save interval
    assert train_script.checkpoint_arguments({}, None) == {}


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither HF_TOKEN nor a stored token (hf auth login)."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test")


@pytest.mark.usefixtures("no_token")
def test_without_a_token_nothing_is_pushed_and_the_run_says_how_to_push(
    train_script: ModuleType,
) -> None:
    repo, reason = train_script.hub_repo("support-bot-d1")
    assert repo is None and "HF_TOKEN" in reason and "support-bot-d1" in reason
    repo, reason = train_script.hub_repo(None)
    assert repo is None and "--push-to" in reason


@pytest.mark.usefixtures("a_token")
def test_a_repo_named_with_its_owner_is_taken_as_given(train_script: ModuleType) -> None:
    assert train_script.hub_repo("acme/support-bot") == ("acme/support-bot", None)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Hub that huggingface_hub's HfApi in this process talks to."""
    with serve_fake_hub() as (hub, url):
        monkeypatch.setattr(constants, "ENDPOINT", url)
        yield hub


@pytest.mark.usefixtures("a_token")
def test_a_refused_token_stops_the_run_before_it_trains(
    train_script: ModuleType, fake_hub: Any
) -> None:
    fake_hub.fail("/api/whoami-v2", status=401, body=b'{"error": "Invalid credentials"}')
    with pytest.raises(train_script.Stop, match="did not accept the token") as exc:
        train_script.hub_repo("support-bot-d1")
    assert exc.value.code == train_script.EXIT_FAILED


# --- the checkpoint to resume from --------------------------------------------------------------


def checkpoint(output: Path, step: int, complete: bool = True) -> Path:
    folder = output / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_the_newest_complete_checkpoint_is_resumed(
    train_script: ModuleType, tmp_path: Path
) -> None:
    checkpoint(tmp_path, 2)
    nine = checkpoint(tmp_path, 9)  # by step, not by name: checkpoint-10 sorts before -9
    checkpoint(tmp_path, 10, complete=False)  # the run was stopped while saving it
    (tmp_path / "checkpoint-final").mkdir()
    assert train_script.newest_checkpoint(tmp_path) == nine
    assert train_script.checkpoint_to_resume(tmp_path, "me/bot") == nine  # the Hub is not asked


def test_nothing_to_resume_exits_2(train_script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(train_script.Stop, match=r"^nothing to resume: no checkpoint in") as exc:
        train_script.checkpoint_to_resume(tmp_path, None)
    assert exc.value.code == train_script.EXIT_NOTHING_TO_RESUME == 2


def test_a_hub_repo_without_a_last_checkpoint_is_nothing_to_resume(
    train_script: ModuleType, tmp_path: Path, fake_hub: Any
) -> None:
    fake_hub.add_model("me/bot").files = {"adapter_config.json": b"{}"}  # a finished run's repo
    with pytest.raises(train_script.Stop, match="me/bot has no last-checkpoint/") as exc:
        train_script.checkpoint_to_resume(tmp_path, "me/bot")
    assert exc.value.code == 2
    with pytest.raises(train_script.Stop, match="no repo me/nothing that this token can read"):
        train_script.checkpoint_to_resume(tmp_path, "me/nothing")


# --- the JSON lines -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(out: str) -> list[dict[str, Any]]:
    def strict(value: str) -> None:
        raise AssertionError(f"{value} is not JSON")

    return [json.loads(line, parse_constant=strict) for line in out.splitlines()]


def test_progress_lines_carry_the_trainers_figures_and_tokens_per_second(
    train_script: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    progress = train_script.ProgressLines("me/bot", clock)
    state = SimpleNamespace(global_step=0, max_steps=40, epoch=0.0)
    progress.on_train_begin(None, state, None)
    clock.now, state.global_step = 104.0, 10
    progress.on_log(
        None,
        state,
        None,
        logs={"loss": 2.5, "learning_rate": 1e-4, "epoch": 0.25, "num_tokens": 2000.0},
    )
    progress.on_log(None, state, None, logs={"eval_loss": 2.4})  # evaluation: no progress line
    progress.on_push_begin(None, state, None)
    progress.on_save(None, state, None)
    clock.now, state.global_step = 105.0, 20
    logs = {"loss": float("nan"), "learning_rate": 5e-5, "epoch": 0.5}  # diverged
    progress.on_log(None, state, None, logs=logs)
    progress.on_save(None, state, None)  # the Trainer skipped this push: the last one uploads

    start, first, pushed, second, kept = lines(capsys.readouterr().out)
    assert start == {"event": "start", "total_steps": 40, "model_repo": "me/bot"}
    assert first == {
        "event": "progress",
        "step": 10,
        "total_steps": 40,
        "loss": 2.5,
        "learning_rate": 1e-4,
        "tokens_per_s": 500.0,  # 2,000 tokens in 4 s
        "epoch": 0.25,
    }
    assert pushed == {"event": "checkpoint", "step": 10, "pushed": True}
    assert second["step"] == 20 and second["tokens_per_s"] is None  # no token count logged
    assert second["loss"] is None  # strict JSON: every reader parses the line
    assert kept == {"event": "checkpoint", "step": 20, "pushed": False}


# --- the script's refusals, run as a user runs it ----------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env=isolated_env(tmp_path))


@pytest.fixture
def package(settings: Settings, tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    shutil.copytree(DATA, root)
    destination = tmp_path / "out" / "pkg"
    build(settings, root, make_inputs(settings, root, ["chat.jsonl"]), destination)
    return destination


def run_script(package: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The package's train.py with this suite's Python, which has no torch: anything that
    answers comes before training starts. No token, no real Hub."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRAINING_PACKAGE"))}
    clean.update({"HF_HOME": str(package.parent / "hf-home"), "HF_HUB_OFFLINE": "1", **env})
    return subprocess.run(
        [sys.executable, str(package / "train.py"), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_resume_with_nothing_saved_exits_2_with_an_error_line(package: Path) -> None:
    refused = run_script(package, "--resume")
    assert refused.returncode == 2, refused.stderr
    skipped, error = lines(refused.stdout)
    assert skipped["event"] == "push_skipped"
    assert error["event"] == "error"
    assert error["message"].startswith(f"nothing to resume: no checkpoint in {package / 'output'}")


def test_with_a_run_key_every_line_carries_it_second(package: Path) -> None:
    """The launcher's key (TRAINING_RUN_KEY) tells train.py's lines from text quoting them."""
    refused = run_script(package, "--resume", TRAINING_RUN_KEY="k3y")
    assert refused.returncode == 2, refused.stderr
    printed = lines(refused.stdout)
    assert [event["event"] for event in printed] == ["push_skipped", "error"]
    assert all(list(event)[:2] == ["event", "run"] and event["run"] == "k3y" for event in printed)


def test_resume_from_a_hub_repo_that_is_not_there_exits_2(package: Path) -> None:
    with serve_fake_hub() as (_, url):
        refused = run_script(
            package, "--resume", "--push-to", "me/bot", HF_ENDPOINT=url, HF_HUB_OFFLINE="0"
        )
    assert refused.returncode == 2, refused.stderr
    assert lines(refused.stdout)[-1] == {
        "event": "error",
        "message": f"nothing to resume: no checkpoint in {package / 'output'}, and the Hub has "
        "no repo me/bot that this token can read",
    }


def test_an_unexpected_failure_ends_with_an_error_line_and_the_traceback(package: Path) -> None:
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    (package / manifest["files"]["trl_config"]).unlink()
    failed = run_script(package)
    assert failed.returncode == 1
    error = lines(failed.stdout)[-1]
    assert error["event"] == "error" and error["message"].startswith("FileNotFoundError: ")
    assert "Traceback (most recent call last)" in failed.stderr


def test_help_answers_without_the_training_libraries(package: Path) -> None:
    helped = run_script(package, "--help")
    assert helped.returncode == 0 and "--push-to OWNER/NAME" in helped.stdout


def test_the_time_limit_saves_and_stops_at_the_step_that_passes_it(
    train_script: ModuleType,
) -> None:
    """--max-hours counts from the script's start; the step that ends past it is saved as a
    checkpoint (so --resume goes on) and training stops there; every process agrees."""
    clock = Clock()
    asked: list[bool] = []

    def any_process(over: bool) -> bool:
        asked.append(over)
        return over

    limit = train_script.TimeLimit(0.5, clock, any_process)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    clock.now += 1799.0
    limit.on_step_end(None, None, control)
    assert (control.should_save, control.should_training_stop, limit.reached) == (
        False,
        False,
        False,
    )
    clock.now += 1.0
    limit.on_step_end(None, None, control)
    assert control.should_save and control.should_training_stop and limit.reached
    assert asked == [False, True]


def test_another_process_past_the_limit_stops_this_one_too(train_script: ModuleType) -> None:
    """Under accelerate each GPU's process has its own clock: one stopping alone would leave the
    others waiting for it forever."""
    limit = train_script.TimeLimit(1.0, Clock(), lambda over: True)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    limit.on_step_end(None, None, control)
    assert control.should_training_stop and limit.reached


def test_without_a_time_limit_nothing_is_asked_of_the_processes(
    train_script: ModuleType,
) -> None:
    def never(over: bool) -> bool:
        raise AssertionError("no limit: no collective call each step")

    limit = train_script.TimeLimit(None, Clock(), never)
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    limit.on_step_end(None, None, control)
    assert not control.should_training_stop and not limit.reached


@pytest.mark.parametrize("hours", ["0", "-1", "nan", "inf"])
def test_a_time_limit_must_be_a_positive_number_of_hours(package: Path, hours: str) -> None:
    refused = run_script(package, "--max-hours", hours)
    assert refused.returncode == 2 and "--max-hours" in refused.stderr


# --- never into a public repo --------------------------------------------------------------------


def test_a_public_model_repo_is_refused_before_training(
    train_script: ModuleType, fake_hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hub_private_repo applies only when the Trainer creates the repo: pushed into an existing
    public one, checkpoints (and what they memorised of the data) would be published."""
    fake_hub.add_account("hf_me", "me")
    monkeypatch.setenv("HF_TOKEN", "hf_me")
    fake_hub.add_model("me/bot")  # public
    with pytest.raises(train_script.Stop) as exc:
        train_script.refuse_public_repo("me/bot")
    assert exc.value.code == train_script.EXIT_FAILED
    message = str(exc.value)
    assert "me/bot is a public model repo" in message
    assert "make it private" in message and "--push-to" in message


def test_a_private_or_new_model_repo_is_pushed_to(
    train_script: ModuleType, fake_hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub.add_account("hf_me", "me")
    monkeypatch.setenv("HF_TOKEN", "hf_me")
    fake_hub.models["me/kept"] = Repo("me/kept", owner="me")
    train_script.refuse_public_repo("me/kept")  # private: pushed to
    train_script.refuse_public_repo("me/new")  # not there: the Trainer creates it private


def test_a_run_pushing_into_a_public_repo_stops_with_the_fix(package: Path) -> None:
    with serve_fake_hub() as (hub, url):
        hub.add_account("hf_me", "me")
        hub.add_model("me/public-bot")
        refused = run_script(
            package,
            "--push-to",
            "me/public-bot",
            HF_ENDPOINT=url,
            HF_HUB_OFFLINE="0",
            HF_TOKEN="hf_me",
        )
    assert refused.returncode == 1, refused.stderr
    error = lines(refused.stdout)[-1]
    assert error["event"] == "error" and "me/public-bot is a public model repo" in error["message"]


def test_the_launcher_looks_for_checkpoints_where_resume_does(
    train_script: ModuleType, tmp_path: Path
) -> None:
    """tools/training_launcher/checkpoints.py repeats train.py's names (the script runs without
    this package): a resume refused or suggested must match what --resume would find."""
    defaults = train_script.parse_args([])
    assert defaults.output_dir == train_script.PACKAGE_DIR / checkpoints.OUTPUT_DIR
    assert train_script.CHECKPOINT_PREFIX == checkpoints.CHECKPOINT_PREFIX
    assert f"{train_script.HUB_CHECKPOINT}/{train_script.TRAINER_STATE}" == (
        checkpoints.HUB_CHECKPOINT_STATE
    )
    output = tmp_path / checkpoints.OUTPUT_DIR
    (output / "checkpoint-100").mkdir(parents=True)  # unfinished: no trainer state
    assert train_script.newest_checkpoint(output) is None
    assert not checkpoints.local_checkpoint(tmp_path)
    (output / "checkpoint-100" / train_script.TRAINER_STATE).write_text("{}")
    assert train_script.newest_checkpoint(output) is not None
    assert checkpoints.local_checkpoint(tmp_path)


@pytest.mark.parametrize(
    ("mixed", "dtype"), [({"bf16": True}, "bfloat16"), ({"fp16": True}, "float16"), ({}, "float32")]
)
def test_the_reference_copy_loads_in_the_dtype_the_machine_computes_in(
    train_script: ModuleType, mixed: dict[str, bool], dtype: str
) -> None:
    """DPO/KTO full fine-tuning: the frozen reference only runs forwards under the run's
    autocast, so it loads in that dtype (float32 master weights stay the trained model's), on
    no device map (the trainer places it on each process's device)."""
    args = {"model_init_kwargs": {"dtype": "float32", "revision": "abc123"}, **mixed}
    assert train_script.reference_init_kwargs(args) == {
        "dtype": dtype,
        "revision": "abc123",
        "device_map": None,
    }
    assert args["model_init_kwargs"]["dtype"] == "float32"  # the trained model's, untouched
