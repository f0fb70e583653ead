"""README.md of a package: what it trains, how to run it, what each file is."""

from typing import Any

from tools.package_builder.config import MANIFEST_NAME, FilesConfig
from tools.package_builder.manifest import PackageManifest


def render_readme(manifest: PackageManifest, files: FilesConfig, axolotl_reads_data: bool) -> str:
    model, config, data, target = (
        manifest.model,
        manifest.config,
        manifest.data,
        manifest.deployment,
    )
    revision = f" at revision `{model.revision}`" if model.revision else ""
    adapter = config.values.get("adapter", "none")
    held_out = data.validation.records if data.validation else 0
    lines = [
        f"# {manifest.draft.title or manifest.draft.id}: training package",
        "",
        f"Fine-tunes **{model.id}**{revision} with the **{config.template}** template "
        f"(method {config.method}, adapter {adapter}) on {len(manifest.datasets)} dataset(s): "
        f"{data.train.records:,} training and {held_out:,} validation records, "
        f"{data.train_tokens:,} training tokens per epoch.",
        "",
        f"Built by {manifest.generator.name} {manifest.generator.version} on "
        f"{manifest.created_at:%Y-%m-%d %H:%M} UTC from draft `{manifest.draft.id}` "
        f"(version {manifest.draft.version}).",
        "",
        "## Train with TRL + PEFT",
        "",
        "```sh",
        "python -m venv .venv && . .venv/bin/activate",
        f"pip install -r {files.requirements}",
        f"python {files.train_script}",
        "```",
        "",
        f"`{files.train_script}` reads every setting from `{MANIFEST_NAME}` and "
        f"`{files.trl_config}`. It decides only what depends on the machine it runs on (bf16, "
        "fp16 or float32; the optimizer where bitsandbytes is missing) and prints each decision.",
        "",
        "- `--max-steps N`: stop after N optimizer steps (a quick test run).",
        "- `--model PATH_OR_ID`: another copy of the base model, such as a local directory.",
        "- `--output-dir DIR`: where the adapter (or the full model) and `run_summary.json` go; "
        "default `output/` here.",
        "- `--push-to OWNER/NAME`: the Hub repo for checkpoints and the trained model, instead "
        f"of `{manifest.hub.model_repo}`.",
        "- `--resume`: continue from the newest checkpoint in the output directory, else from "
        "the Hub repo's `last-checkpoint/`.",
        "- `--max-hours HOURS`: stop once this long has passed since the start, after saving "
        "a checkpoint at the step that passed it (then `--resume` goes on from there).",
        "",
    ]
    if target.gpu_count > 1:
        lines += [
            f"On the planned {target.gpu_count} GPUs, start one process per GPU: "
            f"`accelerate launch --num_processes {target.gpu_count} {files.train_script}`.",
            "",
        ]
    if config.values.get("load_in_4bit") is True:
        lines += [
            "QLoRA: the base model loads in 4-bit through bitsandbytes, which needs an NVIDIA GPU "
            "with CUDA; on any other machine the script stops and says so.",
            "",
        ]
    lines += [
        f"Planned hardware: **{target.target}** ({target.hardware}): about "
        f"{target.peak_memory_gb:.1f} GB peak per GPU, {target.hours:.2f} h, "
        f"${target.cost_usd:.2f} (budget ${target.budget_usd:.2f}; {target.prices}).",
        "",
        *_hub_lines(manifest),
        "## Train with Axolotl",
        "",
    ]
    if axolotl_reads_data:
        lines += [
            "Run from this directory (the data paths are relative to it):",
            "",
            "```sh",
            f"axolotl train {files.axolotl_config}",
            "```",
            "",
        ]
    else:
        lines += [
            f"`{files.axolotl_config}` holds the training settings but no `datasets` entry: "
            f"Axolotl has no loader for conversational {data.shape} records. Add one that "
            f"fits your Axolotl version before `axolotl train {files.axolotl_config}`.",
            "",
        ]
    lines += _axolotl_differences(adapter, config.values)
    rendered = " (message lists: the model's chat template renders them)"
    lines += [
        "## Data",
        "",
        f"Records are stored as TRL's `{data.shape}` layout"
        + (rendered if data.conversational else "")
        + f". Split: {data.split.rule}.",
        "",
        *(
            [
                "Fields renamed as the files were read: "
                + ", ".join(f"{source!r} -> {target}" for source, target in data.columns.items())
                + ".",
                "",
            ]
            if data.columns
            else []
        ),
        "| dataset | format | records | train | validation | sha256 |",
        "|---|---|---|---|---|---|",
        *(
            f"| {d.ref} | {d.format} | {d.records:,} | {d.train_records:,} | "
            f"{d.validation_records:,} | `{d.sha256[:16]}…` |"
            for d in manifest.datasets
        ),
        "",
        *_conversions(manifest),
        *_dropped(manifest),
        *_media_lines(manifest),
        "## Files",
        "",
        f"- `{MANIFEST_NAME}`: model, configuration, datasets, split, deployment, the Hub repo "
        "the run pushes to, checksums.",
        f"- `{files.trl_config}`: TRL trainer, its config, PEFT LoraConfig and quantisation.",
        f"- `{files.axolotl_config}`: the same settings as an Axolotl config.",
        f"- `{files.train_script}`, `{files.requirements}`: the training script and its "
        "dependencies.",
        f"- `{data.train.path}`"
        + (f", `{data.validation.path}`" if data.validation else "")
        + ": the records, ready for the trainer.",
    ]
    if any(f.packaged_as for d in manifest.datasets for f in d.files):
        lines.append(f"- `{files.source_dir}/`: the validated dataset files, byte for byte.")
    if manifest.accepted_warnings:
        lines += ["", "## Warnings accepted when the package was written", ""]
        lines += [f"- {w.message}" for w in manifest.accepted_warnings]
    return "\n".join(lines) + "\n"


def _hub_lines(manifest: PackageManifest) -> list[str]:
    """Where checkpoints go, how a stopped run resumes, and what the progress lines say."""
    hub = manifest.hub
    return [
        "### Checkpoints, the Hub and progress",
        "",
        f"Every {hub.save_steps:,} optimizer steps the run saves a checkpoint in the output "
        f"directory (keeping the newest {hub.keep_checkpoints}). With a Hub token "
        "(`HF_TOKEN`, or `hf auth login`) it also pushes it to the "
        f"{'private ' if hub.private else ''}model repo `{hub.model_repo}` in the token's "
        f"account (`hub` in `{MANIFEST_NAME}`; an `owner/name` there or in `--push-to` names "
        "another account) as `last-checkpoint/`, and pushes the trained model there at the end "
        "(an existing public repo of that name is refused before training). "
        "Without a token it trains and saves locally, and says that it pushed nothing.",
        "",
        "A run stopped by a timeout or a preemption loses at most one save interval: "
        "`--resume` continues from the last checkpoint, with the same data order and optimizer "
        "state.",
        "",
        "Besides its usual log, the script prints one JSON object per line for programs to "
        'follow the run: `{"event": "start", ...}` with the total steps, `"progress"` at each '
        'logging step (step, loss, learning rate, tokens/s, epoch), `"checkpoint"` at each save '
        '(`pushed`: its upload to the Hub started), `"done"` with the runtime and the peak GPU '
        'memory, or `"error"` with the reason (then the exit status is not 0; 2 when there is '
        "nothing to resume, 3 when `--max-hours` stopped the run, its checkpoint saved). "
        "When `TRAINING_RUN_KEY` is set (training-package-mcp sets it "
        'for each run it launches), every object carries it second, as `"run"`: a reader '
        "counts only the objects with its key, since other text in the log may quote one.",
        "",
    ]


def _conversions(manifest: PackageManifest) -> list[str]:
    """A line per dataset convert: "sft" made supervised data of, with what it left out."""
    lines = []
    for dataset in manifest.datasets:
        done = dataset.converted
        if done is None:
            continue
        left = f"; {done.left_out:,} undesirable ones were left out" if done.left_out else ""
        lines.append(
            f"- `{dataset.ref}`: {done.records:,} {dataset.format} examples train as "
            f'{done.trains_as} data, their chosen or desirable answers (convert: "{done.to}")'
            f"{left}."
        )
    return [*lines, ""] if lines else []


def _dropped(manifest: PackageManifest) -> list[str]:
    """A line per dataset drop_invalid left records out of, by the first error of each."""
    lines = [
        f"- {d.ref}: {d.dropped:,} invalid records were left out, as asked (drop_invalid), by the "
        "first error of each: "
        + ", ".join(f"{n:,} {code}" for code, n in d.dropped_counts.items())
        + "."
        for d in manifest.datasets
        if d.dropped
    ]
    return [*lines, ""] if lines else []


def _media_lines(manifest: PackageManifest) -> list[str]:
    """What drop_media took out, dataset by dataset: the package says it trains on text alone."""
    lines = [
        f"- {d.ref}: {d.media_dropped.records:,} records held media, removed as asked "
        f"(drop_media): {d.media_dropped.summary()}. They train on their text alone."
        for d in manifest.datasets
        if d.media_dropped
    ]
    return [*lines, ""] if lines else []


def _axolotl_differences(adapter: str, values: dict[str, Any]) -> list[str]:
    """What Axolotl runs differently from train.py, whose run the plan above estimates."""
    lines = ["The planned memory, time and cost above are for `train.py`'s run."]
    if adapter == "none" and (values.get("bf16") is True or values.get("fp16") is True):
        lines.append(
            "Axolotl loads the model in the mixed-precision dtype (its `resolve_dtype`), so its "
            "full fine-tuning trains 16-bit weights and optimizer states where `train.py` keeps "
            "float32 master weights: about half the memory, but AdamW updates smaller than a "
            "16-bit weight's spacing are lost."
        )
    return [" ".join(lines), ""]
