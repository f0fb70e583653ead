"""Fine-tune this package's base model on this package's data with TRL + PEFT.

Every training setting comes from the package: package.yaml names the model, the data files,
the TRL config (the trainer, its arguments, the LoRA adapter and the quantisation) and the Hub
repo checkpoints go to. This script decides only what depends on the machine it runs on, and
prints each decision.

    python train.py                                  # the package's model, every epoch
    python train.py --max-steps 2 --model ./tiny     # a short run on another copy of the model
    python train.py --push-to me/support-bot         # checkpoints and the result to that repo
    python train.py --resume                         # continue a stopped run
    python train.py --max-hours 2                    # stop (checkpoint saved) after 2 hours

Besides the trainer's own log, stdout carries one JSON object per line for programs that follow
the run, its "event" key first: start, progress (each logging step), checkpoint (each save),
push_skipped (no Hub token), done, or error (then the exit status is not 0; 3 when the run
stopped at --max-hours, after saving a checkpoint that --resume goes on from). A program that
starts this script may set TRAINING_RUN_KEY: each line then carries it as "run", second, so
that the program can tell these lines from text in the log that only looks like them.

Written by training-package-mcp; it needs the packages in requirements.txt.
"""

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

MANIFEST = "package.yaml"
SUMMARY = "run_summary.json"
PACKAGE_DIR = Path(__file__).resolve().parent
# Optimizers that come from bitsandbytes (transformers OptimizerNames), which needs CUDA here.
BITSANDBYTES_OPTIMIZER_MARKS = ("8bit", "bnb", "paged_")
CPU_OPTIMIZER = "adamw_torch"
# Where the Trainer saves checkpoints (checkpoint-<step>) and, with hub_strategy "checkpoint",
# the folder of the Hub repo that holds the latest one.
CHECKPOINT_PREFIX = "checkpoint-"
HUB_CHECKPOINT = "last-checkpoint"
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it into every complete checkpoint
EXIT_FAILED = 1
EXIT_NOTHING_TO_RESUME = 2
EXIT_TIME_LIMIT = 3
SECONDS_PER_HOUR = 3600
GIB = 2**30  # memory in binary GB, as PyTorch and nvidia-smi count it
# Under `accelerate launch` every GPU runs this script: only the first process reports.
MAIN_PROCESS = os.environ.get("RANK", "0") == "0"
RUN_KEY = os.environ.get("TRAINING_RUN_KEY")  # the launcher's key for this run's lines


class Stop(Exception):
    """The run cannot go on: the message says why and what to do; the code is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def emit(event: str, **fields: Any) -> None:
    """One machine-readable line on stdout: a JSON object, its "event" key first, then the run's
    key when the launcher gave one. Strict JSON: a value that is not a finite number (a
    diverged loss) is null."""
    finite = {
        name: None if isinstance(value, float) and not math.isfinite(value) else value
        for name, value in fields.items()
    }
    if MAIN_PROCESS or event == "error":
        run = {"run": RUN_KEY} if RUN_KEY else {}
        print(json.dumps({"event": event, **run, **finite}, allow_nan=False), flush=True)


def positive_hours(text: str) -> float:
    """--max-hours: a finite number of hours above zero."""
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and hours > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of hours")
    return hours


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        help="Hub id or local directory of the base model (default: the package's model, at "
        "its recorded revision).",
    )
    parser.add_argument(
        "--revision", help="Branch, tag or commit of --model (default: the latest)."
    )
    parser.add_argument(
        "--max-steps", type=int, help="Stop after this many optimizer steps (default: epochs)."
    )
    parser.add_argument(
        "--output-dir", type=Path, default=PACKAGE_DIR / "output", help="Where results go."
    )
    parser.add_argument(
        "--push-to",
        metavar="OWNER/NAME",
        help="Hub repo for checkpoints and the trained model (default: hub.model_repo in "
        "package.yaml, in the token owner's account). Pushing needs a Hub token: HF_TOKEN or "
        "`hf auth login`.",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Continue from the newest checkpoint in --output-dir, else from the Hub repo's "
        f"{HUB_CHECKPOINT}/.",
    )
    parser.add_argument(
        "--max-hours",
        type=positive_hours,
        help="Stop after this many hours from the start, saving a checkpoint first (exit "
        f"status {EXIT_TIME_LIMIT}; --resume goes on). Default: no limit.",
    )
    return parser.parse_args(argv)


def read_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((PACKAGE_DIR / name).read_text(encoding="utf-8"))


def fit_to_machine(
    export: dict[str, Any], cuda: bool, bf16_ok: bool
) -> tuple[dict[str, Any], list[str]]:
    """The trainer arguments adjusted to this machine, and a line per adjustment."""
    args = dict(export["args"])
    init = dict(args.get("model_init_kwargs") or {})
    notes = []
    if export.get("quantization_config") and not cuda:
        raise Stop(
            "This package trains QLoRA: the base model loads in 4-bit through bitsandbytes, "
            "which needs an NVIDIA GPU with CUDA, and none is available. Run it on a CUDA "
            "machine (package.yaml names the planned one), or build a package with the lora "
            "template to train here."
        )
    if args.get("bf16") and not bf16_ok:
        args["bf16"] = False
        if cuda:
            args["fp16"] = True
            notes.append("this GPU has no bfloat16: fp16 mixed precision instead of bf16")
        else:
            notes.append("no CUDA GPU: bf16 mixed precision off, training in float32")
    if args.get("fp16") and not cuda:
        args["fp16"] = False
        notes.append("no CUDA GPU: fp16 mixed precision off, training in float32")
    dtype = init.get("dtype")
    if (dtype == "bfloat16" and not bf16_ok) or (dtype == "float16" and not cuda):
        init["dtype"] = "float16" if cuda else "float32"
        notes.append(f"base weights load in {init['dtype']} instead of {dtype}")
    optimizer = str(args.get("optim", ""))
    if not cuda and any(mark in optimizer for mark in BITSANDBYTES_OPTIMIZER_MARKS):
        args["optim"] = CPU_OPTIMIZER
        notes.append(f"optimizer {optimizer} needs bitsandbytes on CUDA: {CPU_OPTIMIZER} instead")
    args["model_init_kwargs"] = init
    return args, notes


def reference_init_kwargs(args: dict[str, Any]) -> dict[str, Any]:
    """How the reference copy loads (DPO/KTO full fine-tuning): like the model, but in the
    dtype this machine computes in (bf16, else fp16, else the model's), on no device map: the
    trainer places it on each process's device."""
    init = dict(args["model_init_kwargs"])
    if args.get("bf16"):
        init["dtype"] = "bfloat16"
    elif args.get("fp16"):
        init["dtype"] = "float16"
    return {**init, "device_map": None}


def hub_repo(name: str | None) -> tuple[str | None, str | None]:
    """The Hub repo this run pushes to, as owner/name, or None and the reason it pushes nothing.

    A name without an owner lands in the account of the token's owner."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if not name:
        return None, "no Hub repo: package.yaml has no hub section and --push-to was not given"
    if get_token() is None:
        return None, (
            f"no Hub token: checkpoints and the trained model stay in the output directory; "
            f"set HF_TOKEN (or run `hf auth login`) to push them to {name}"
        )
    if "/" in name:
        return name, None
    try:
        owner = HfApi().whoami()["name"]
    except HfHubHTTPError as exc:
        raise Stop(
            f"The Hub did not accept the token ({first_line(exc)}): set HF_TOKEN to a token "
            f"with write access, or run without a token to train locally."
        ) from exc
    return f"{owner}/{name}", None


def refuse_public_repo(repo: str) -> None:
    """Stop before training when `repo` exists and is public: the Trainer makes a repo private
    only when it creates it, so checkpoints, and what they memorised of the data, would be
    published."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        private = HfApi().model_info(repo).private
    except RepositoryNotFoundError:
        return  # created private by the Trainer
    except HfHubHTTPError as exc:
        raise Stop(
            f"Could not check that the Hub repo {repo} is private ({first_line(exc)}): try again, "
            "or run without a token to train locally."
        ) from exc
    if not private:
        raise Stop(
            f"{repo} is a public model repo: this run's checkpoints and trained model would be "
            f"published there. Either make it private (https://huggingface.co/{repo}/settings) "
            "or push to another name with --push-to OWNER/NAME."
        )


def checkpoint_arguments(hub: dict[str, Any], repo: str | None) -> dict[str, Any]:
    """Trainer arguments that save a checkpoint every hub.save_steps steps, keeping the newest
    hub.keep_checkpoints on disk, and, with a repo, push each one to it as last-checkpoint/
    (privately), then the trained model at the end."""
    args: dict[str, Any] = {}
    if hub.get("save_steps"):
        args.update(save_strategy="steps", save_steps=hub["save_steps"])
    if hub.get("keep_checkpoints"):
        args["save_total_limit"] = hub["keep_checkpoints"]
    if repo:
        args.update(
            push_to_hub=True,
            hub_model_id=repo,
            hub_private_repo=hub.get("private", True),
            hub_strategy="checkpoint",
        )
    return args


def trainer_arguments(
    export: dict[str, Any],
    hub: dict[str, Any],
    repo: str | None,
    options: argparse.Namespace,
    cuda: bool,
    bf16_ok: bool,
) -> tuple[dict[str, Any], list[str]]:
    """The trainer config's keyword arguments for this run on this machine, and a line per
    decision the machine forced."""
    args, notes = fit_to_machine(export, cuda, bf16_ok)
    args.update(checkpoint_arguments(hub, repo))
    if options.model:  # the package's revision belongs to the package's model
        args["model_init_kwargs"].pop("revision", None)
    if options.revision:
        args["model_init_kwargs"]["revision"] = options.revision
    if options.max_steps is not None:
        args["max_steps"] = options.max_steps
    return args, notes


def newest_checkpoint(output_dir: Path) -> Path | None:
    """The checkpoint-<step> folder with the highest step that the Trainer finished writing."""
    complete = {
        int(folder.name.removeprefix(CHECKPOINT_PREFIX)): folder
        for folder in output_dir.glob(f"{CHECKPOINT_PREFIX}*")
        if folder.name.removeprefix(CHECKPOINT_PREFIX).isdigit()
        and (folder / TRAINER_STATE).is_file()
    }
    return complete[max(complete)] if complete else None


def checkpoint_to_resume(output_dir: Path, repo: str | None) -> Path:
    """The newest local checkpoint, else the Hub repo's last-checkpoint/ (downloaded into the
    Hub cache, every file from the same commit); Stop with exit status 2 when neither exists."""
    local = newest_checkpoint(output_dir)
    if local is not None:
        return local
    where = f"no checkpoint in {output_dir}"
    if repo is None:
        raise Stop(
            f"nothing to resume: {where}, and no Hub repo to look in (give --push-to "
            "OWNER/NAME, or set a Hub token for the package's repo)",
            EXIT_NOTHING_TO_RESUME,
        )
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    state = f"{HUB_CHECKPOINT}/{TRAINER_STATE}"
    try:
        info = HfApi().model_info(repo)
        names = [f.rfilename for f in info.siblings or [] if f.rfilename.startswith(HUB_CHECKPOINT)]
        if state not in names:
            raise Stop(
                f"nothing to resume: {where}, and {repo} has no {HUB_CHECKPOINT}/",
                EXIT_NOTHING_TO_RESUME,
            )
        files = {name: Path(hf_hub_download(repo, name, revision=info.sha)) for name in names}
    except RepositoryNotFoundError as exc:
        raise Stop(
            f"nothing to resume: {where}, and the Hub has no repo {repo} that this token can read",
            EXIT_NOTHING_TO_RESUME,
        ) from exc
    except (HfHubHTTPError, LocalEntryNotFoundError) as exc:
        raise Stop(
            f"nothing to resume: {where}, and {repo}'s {HUB_CHECKPOINT}/ could not be "
            f"downloaded ({first_line(exc)})",
            EXIT_NOTHING_TO_RESUME,
        ) from exc
    return files[state].parent


def first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class ProgressLines:
    """Trainer callback methods that print the start, progress and checkpoint lines.

    tokens/s comes from the trainers' own count of the tokens they trained on (TRL logs it as
    num_tokens), over the time since the previous logging step."""

    def __init__(self, repo: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.repo = repo
        self.clock = clock
        self.tokens, self.since = 0.0, clock()
        self.pushing = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tokens, self.since = 0.0, self.clock()
        emit("start", total_steps=state.max_steps, model_repo=self.repo)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        logs = logs or {}
        if "loss" not in logs:  # evaluation and end-of-training summaries
            return
        now, tokens = self.clock(), logs.get("num_tokens")
        rate = None
        if tokens is not None and tokens >= self.tokens and now > self.since:
            rate = round((tokens - self.tokens) / (now - self.since), 1)
            self.tokens, self.since = tokens, now
        emit(
            "progress",
            step=state.global_step,
            total_steps=state.max_steps,
            loss=logs.get("loss"),
            learning_rate=logs.get("learning_rate"),
            tokens_per_s=rate,
            epoch=logs.get("epoch", state.epoch),
        )

    def on_push_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.pushing = True  # the Trainer skips a checkpoint's push while the last one uploads

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        emit("checkpoint", step=state.global_step, pushed=self.pushing)
        self.pushing = False


class TimeLimit:
    """Trainer callback method that ends training at --max-hours, counted from this object's
    making: the step that ends past the limit is saved as a checkpoint,
    then training stops. `any_process` says whether any training process is past it, so that
    all stop at the same step (one stopping alone would leave the others waiting on it)."""

    def __init__(
        self,
        max_hours: float | None,
        clock: Callable[[], float] = time.monotonic,
        any_process: Callable[[bool], bool] = bool,
    ) -> None:
        self.deadline = None if max_hours is None else clock() + max_hours * SECONDS_PER_HOUR
        self.max_hours = max_hours
        self.clock = clock
        self.any_process = any_process
        self.reached = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.deadline is None or not self.any_process(self.clock() >= self.deadline):
            return
        control.should_save = True
        control.should_training_stop = True
        self.reached = True


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        return train(options)
    except Stop as stop:
        emit("error", message=str(stop))
        return stop.code
    except Exception as exc:  # the traceback for people, the error line for programs
        traceback.print_exc()
        emit("error", message=f"{type(exc).__name__}: {first_line(exc)}")
        return EXIT_FAILED


def train(options: argparse.Namespace) -> int:
    manifest = read_yaml(MANIFEST)
    export = read_yaml(manifest["files"]["trl_config"])
    hub = manifest.get("hub") or {}
    name = options.push_to or hub.get("model_repo")
    repo, skipped = hub_repo(name)
    if skipped:
        emit("push_skipped", reason=skipped)
    if repo and hub.get("private", True):
        refuse_public_repo(repo)
    resume_from = None
    if options.resume:
        # without a token, a public (or already downloaded) repo named with its owner still reads
        readable = repo or (name if name and "/" in name else None)
        resume_from = checkpoint_to_resume(options.output_dir, readable)

    import torch  # imported after the checks above, so --help and refusals answer at once
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainerCallback
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

    class ProgressCallback(ProgressLines, TrainerCallback):
        """ProgressLines as the Trainer calls it."""

    class TimeLimitCallback(TimeLimit, TrainerCallback):
        """TimeLimit as the Trainer calls it."""

    def any_process(over: bool) -> bool:  # called in training, once the trainer exists
        flag = torch.tensor(float(over), device=trainer.accelerator.device)
        return bool(trainer.accelerator.reduce(flag, reduction="sum").item() > 0)

    # counted from here: loading the data and the model count against the limit
    limit = TimeLimitCallback(options.max_hours, any_process=any_process)

    cuda = torch.cuda.is_available()
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    args, notes = trainer_arguments(export, hub, repo, options, cuda, bf16_ok)
    model = options.model or manifest["model"]["id"]
    if options.model:
        notes.append(f"base model {options.model} instead of {manifest['model']['id']}")
    if resume_from is not None:
        notes.append(f"resuming from {resume_from}")
    reference = reference_init_kwargs(args) if export.get("reference_in_compute_dtype") else None
    if reference is not None:
        notes.append(f"reference model: a frozen copy in {reference['dtype']}")
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"training on {device}", flush=True)
    for note in notes:
        print(f"note: {note}", flush=True)

    data = manifest["data"]
    files = {"train": str(PACKAGE_DIR / data["train"]["path"])}
    if data.get("validation"):
        files["validation"] = str(PACKAGE_DIR / data["validation"]["path"])
    dataset = load_dataset("json", data_files=files)

    configs = {"SFTConfig": SFTConfig, "DPOConfig": DPOConfig, "KTOConfig": KTOConfig}
    trainers = {"SFTTrainer": SFTTrainer, "DPOTrainer": DPOTrainer, "KTOTrainer": KTOTrainer}
    config_class, trainer_class = configs[export["config_class"]], trainers[export["trainer"]]
    peft = export.get("peft_config")
    quantization = export.get("quantization_config")
    extra = {}
    if reference is not None:
        dtype = getattr(torch, reference.pop("dtype"))
        extra["ref_model"] = AutoModelForCausalLM.from_pretrained(model, dtype=dtype, **reference)
    trainer = trainer_class(
        model=model,
        args=config_class(output_dir=str(options.output_dir), **args),
        train_dataset=dataset["train"],
        eval_dataset=dataset.get("validation"),
        peft_config=LoraConfig(**peft) if peft else None,
        quantization_config=BitsAndBytesConfig(**quantization) if quantization else None,
        callbacks=[ProgressCallback(repo), limit],
        **extra,
    )
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if limit.reached:
        raise Stop(
            f"time limit: stopped after {limit.max_hours} h at step {trainer.state.global_step}, "
            f"its checkpoint saved in {newest_checkpoint(options.output_dir)}"
            + (f" and pushed to {repo}" if repo else "")
            + "; run again with --resume to go on",
            EXIT_TIME_LIMIT,
        )
    trainer.save_model(str(options.output_dir))  # first: kept even if what follows fails
    evaluation = trainer.evaluate() if "validation" in dataset else {}
    summary = {
        "model": model,
        "device": device,
        "decisions": notes,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "eval": evaluation,
    }
    options.output_dir.mkdir(parents=True, exist_ok=True)
    (options.output_dir / SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary), flush=True)
    if repo:  # the output folder (the adapter or the model, and the summary), not checkpoints
        trainer.push_to_hub(commit_message=f"Trained model, step {trainer.state.global_step}")
    emit(
        "done",
        model_repo=repo,
        max_memory_allocated_gb=(
            round(torch.cuda.max_memory_allocated() / GIB, 2) if cuda else None
        ),
        runtime_s=round(result.metrics["train_runtime"], 1),
        steps=trainer.state.global_step,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
