"""build_package as a service: what a package holds, atomic writes, disk-full and changed data,
the record layouts, where packages may go, and the config (train.py: test_train_script.py)."""

import errno
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from filelock import FileLock
from huggingface_hub.utils import validate_repo_id
from pydantic import ValidationError

from server.settings import Settings, load_settings
from tests.fake_hub import serve_fake_hub
from tests.support import isolated_env
from tools.dataset_validator.convert import sft_format, to_sft
from tools.dataset_validator.formats import Example, FormatChecker, detect
from tools.dataset_validator.hub import HubAccess
from tools.dataset_validator.kinds import Conversion, Format, Role
from tools.dataset_validator.roots import allowed_roots
from tools.dataset_validator.service import ValidationRequest, validate_datasets
from tools.dataset_validator.sources import Sources
from tools.deployment_estimator.results import DeploymentEstimate, DeploymentOption
from tools.errors import UserError
from tools.model_browser.results import ModelDetails
from tools.package_builder.checks import (
    check_dataset_files,
    check_package,
    raise_errors,
)
from tools.package_builder.config import MANIFEST_NAME, FilesConfig, RequirementsConfig
from tools.package_builder.data import DatasetChangedError
from tools.package_builder.destination import (
    default_name,
    owner_folder,
    owner_folders,
    package_destination,
    remove_package,
)
from tools.package_builder.exporters import axolotl_dataset
from tools.package_builder.hub import hub_entry
from tools.package_builder.inputs import (
    PackageInputs,
    ValidatedDatasets,
    deployment_choice,
    step_result,
)
from tools.package_builder.manifest import Generator
from tools.package_builder.service import PackageRequest, build_package
from tools.package_builder.shapes import Shape, package_shape, trl_record
from tools.package_builder.writer import sweep_leftovers, write_failure
from tools.template_loader.facts import CrossStepFacts, ModelFacts
from tools.template_loader.service import apply_template
from tools.trainer_run import TrainerRun

DATA = Path(__file__).parent / "data" / "datasets"
TRAIN_SCRIPT = Path(__file__).parents[1] / "tools" / "package_builder" / "files" / "train.py"
TRAINING_REQUIREMENTS = Path(__file__).parent / "training" / "requirements.txt"
NO_HUB = HubAccess(endpoint="http://127.0.0.1:9", timeout_s=1)  # a closed port: never reached
GENERATOR = Generator(name="training-package-mcp", version="test")
MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(env=isolated_env(tmp_path))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A copy of the test datasets the test may change."""
    root = tmp_path / "datasets"
    shutil.copytree(DATA, root)
    return root


def sources(settings: Settings, root: Path) -> Sources:
    return Sources(settings.datasets, allowed_roots([root]), NO_HUB, None)


def make_inputs(
    settings: Settings,
    root: Path | Sources,
    refs: list[str],
    template: str = "lora",
    gpu: str = "A10G",
    gpu_count: int = 1,
    drop_media: bool = False,
    convert: Conversion | None = None,
    **overrides: Any,
) -> PackageInputs:
    """The four steps' results, as the services give them for `refs` in `root`."""
    popular = next(m for m in settings.models.popular if m.id == MODEL_ID)
    model = ModelDetails(
        model_id=MODEL_ID,
        params=popular.params,
        params_b=round(popular.params / 1e9, 3),
        params_source="catalog",
        architecture=popular.architecture,
        context_length=popular.architecture.context_length,
        license=popular.license,
        size_gb=1.0,
        source="offline",
    )
    overrides = {"max_seq_length": 256, **overrides}
    facts = CrossStepFacts(
        model=ModelFacts(model_id=MODEL_ID, context_length=popular.architecture.context_length)
    )
    config = apply_template(settings.templates, template, overrides, facts)
    found = root if isinstance(root, Sources) else sources(settings, root)
    report = validate_datasets(
        ValidationRequest(
            datasets=refs,
            max_seq_length=256,
            validation_split=0.25,
            drop_media=drop_media,
            convert=convert,
        ),
        settings.datasets,
        found,
        NO_HUB,
    )
    assert report.valid, report.summary
    option = DeploymentOption(
        target="a10g-small",
        hardware="A10G (24 GB)",
        gpu=gpu,
        gpu_count=gpu_count,
        fits=True,
        compatible=True,
        peak_memory_gb=3.0,
        usable_memory_gb=22.0,
        hours=0.1,
        cost_usd=0.1,
        within_budget=True,
        tokens_per_second=1000.0,
    )
    estimate = DeploymentEstimate(
        options=[option],
        recommended=option.target,
        selected=option,
        budget_usd=50.0,
        inputs={},
        prices="test prices",
    )
    return PackageInputs(
        draft_id="d1",
        title="Support bot",
        draft_version=5,
        model=model,
        config=config,
        datasets=ValidatedDatasets.model_validate(
            report.model_dump(mode="json", exclude={"preview"})
        ),
        deployment=deployment_choice(estimate, settings.deployment.gpus),
    )


def build(
    settings: Settings,
    root: Path | Sources,
    inputs: PackageInputs,
    destination: Path,
    **kwargs: Any,
) -> Any:
    request = PackageRequest(
        inputs=inputs,
        destination=destination,
        generator=GENERATOR,
        overwrite=kwargs.pop("overwrite", False),
    )
    found = root if isinstance(root, Sources) else sources(settings, root)
    return build_package(request, settings.package, settings.datasets, found, **kwargs)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the package ----------------------------------------------------------------------------


def test_a_package_holds_every_file_with_its_checksum(settings: Settings, data_root: Path) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    destination = data_root.parent / "out" / "pkg"
    result = build(settings, data_root, inputs, destination)

    files = settings.package.files
    assert result.path == str(destination)
    assert set(result.files) == {
        MANIFEST_NAME,
        files.readme,
        files.train_script,
        files.requirements,
        files.trl_config,
        files.axolotl_config,
        files.train_data,
        files.validation_data,
        f"{files.source_dir}/1-chat.jsonl",
    }
    manifest = yaml.safe_load((destination / MANIFEST_NAME).read_text())
    assert manifest == result.manifest
    for name, digest in manifest["checksums"].items():
        assert sha256(destination / name) == digest["sha256"], name
    assert set(manifest["checksums"]) == set(result.files) - {MANIFEST_NAME}
    assert manifest["model"]["id"] == MODEL_ID
    assert manifest["config"]["values"] == inputs.config.config
    assert manifest["deployment"]["target"] == "a10g-small"
    (dataset,) = manifest["datasets"]
    original = DATA / "chat.jsonl"
    assert dataset["sha256"] == sha256(original) == dataset["files"][0]["sha256"]
    assert (destination / dataset["files"][0]["packaged_as"]).read_bytes() == original.read_bytes()
    assert manifest["generator"] == {"name": "training-package-mcp", "version": "test"}
    assert manifest["draft"] == {"id": "d1", "title": "Support bot", "version": 5}

    trl = yaml.safe_load((destination / files.trl_config).read_text())
    assert trl["trainer"] == "SFTTrainer" and trl["args"]["max_length"] == 256
    assert trl["peft_config"]["r"] == 16
    axolotl = yaml.safe_load((destination / files.axolotl_config).read_text())
    assert axolotl["datasets"][0]["path"] == files.train_data
    assert axolotl["test_datasets"][0]["path"] == files.validation_data
    requirements = (destination / files.requirements).read_text().splitlines()
    assert requirements == settings.package.requirements.common
    assert (destination / files.train_script).read_bytes() == TRAIN_SCRIPT.read_bytes()
    readme = (destination / files.readme).read_text()
    assert MODEL_ID in readme and "python train.py" in readme
    assert [p.name for p in destination.parent.iterdir()] == ["pkg"]  # no staging left


def test_a_package_names_the_private_hub_repo_its_run_pushes_to(
    settings: Settings, data_root: Path
) -> None:
    destination = data_root.parent / "out" / "pkg"
    build(settings, data_root, make_inputs(settings, data_root, ["chat.jsonl"]), destination)
    hub, files = settings.package.hub, settings.package.files
    manifest = yaml.safe_load((destination / MANIFEST_NAME).read_text())
    assert manifest["hub"] == {
        "model_repo": "support-bot-d1",  # <title slug>-<draft id>, in the token owner's account
        "private": True,
        "save_steps": hub.save_steps,
        "keep_checkpoints": hub.keep_checkpoints,
    }
    trl = yaml.safe_load((destination / files.trl_config).read_text())
    logging_steps = settings.package.run.logging_steps  # a progress line per logging step
    assert trl["args"]["logging_steps"] == logging_steps
    readme = (destination / files.readme).read_text()
    assert f"Every {hub.save_steps:,} optimizer steps" in readme
    assert "private model repo `support-bot-d1`" in readme
    assert "`--resume`" in readme and '`"progress"` at each logging step' in readme


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Ünïcode 🚀 support bot!", "unicode-support-bot-3f9a1c2b7d4e"),
        ("", "3f9a1c2b7d4e"),
        ("a very long title " * 20, None),
    ],
)
def test_the_hub_repo_name_is_one_the_hub_takes(
    settings: Settings, title: str, expected: str | None
) -> None:
    name = hub_entry(title, "3f9a1c2b7d4e", settings.package.hub).model_repo
    validate_repo_id(f"someone/{name}")
    assert name.endswith("3f9a1c2b7d4e") and "--" not in name
    assert len(name) <= settings.package.hub.repo_name_max_chars
    if expected:
        assert name == expected


@pytest.mark.parametrize("logging_steps", [0, 2.5])
def test_a_logging_interval_a_trainer_would_misread_is_refused(
    settings: Settings, logging_steps: float
) -> None:
    values = settings.package.run.model_dump()
    TrainerRun.model_validate({**values, "logging_steps": 0.01})
    with pytest.raises(ValidationError):
        TrainerRun.model_validate({**values, "logging_steps": logging_steps})


def test_the_records_are_the_validated_ones_split_as_validated(
    settings: Settings, data_root: Path
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    destination = data_root.parent / "out" / "pkg"
    result = build(settings, data_root, inputs, destination)
    files, split = settings.package.files, inputs.datasets.split
    train = jsonl(destination / files.train_data)
    validation = jsonl(destination / files.validation_data)
    assert (len(train), len(validation)) == (split.train_records, split.validation_records)
    assert validation, "the 0.25 share holds some of the 12 records out"
    originals = [json.loads(line)["messages"] for line in (DATA / "chat.jsonl").open()]

    def in_trl_layout(message: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's tool call (content null, arguments a JSON string) as TRL lays it out."""
        if "tool_calls" not in message:
            return message
        calls = [
            {**call, "function": {**call["function"], "arguments": json.loads(arguments)}}
            for call in message["tool_calls"]
            for arguments in [call["function"]["arguments"]]
        ]
        return {**message, "content": message["content"] or "", "tool_calls": calls}

    def canonical(messages: list[dict[str, Any]]) -> str:
        return json.dumps(messages, sort_keys=True)

    written = sorted(canonical(r["messages"]) for r in train + validation)
    expected = sorted(canonical(list(map(in_trl_layout, m))) for m in originals)
    assert written == expected  # tool calls kept, in TRL's layout
    assert result.manifest["data"]["train"]["records"] == len(train)
    assert result.manifest["data"]["shape"] == "messages"


def test_a_qlora_package_on_two_gpus_says_what_it_needs(
    settings: Settings, data_root: Path
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"], template="qlora", gpu_count=2)
    destination = data_root.parent / "out" / "pkg"
    build(settings, data_root, inputs, destination)
    files = settings.package.files
    requirements = (destination / files.requirements).read_text().splitlines()
    qlora = settings.package.requirements.qlora
    assert requirements == [*settings.package.requirements.common, *qlora]
    readme = (destination / files.readme).read_text()
    assert "needs an NVIDIA GPU with CUDA" in readme
    assert "accelerate launch --num_processes 2 train.py" in readme
    trl = yaml.safe_load((destination / files.trl_config).read_text())
    assert trl["quantization_config"]["load_in_4bit"] is True


@pytest.mark.parametrize("template", ["lora", "full"])
def test_the_readme_says_what_axolotl_runs_differently(
    settings: Settings, data_root: Path, template: str
) -> None:
    """axolotl.yaml carries the same settings, but Axolotl loads the model in bf16 when bf16 is
    on (resolve_dtype), so its full fine-tuning is not train.py's float32-master-weights run."""
    inputs = make_inputs(settings, data_root, ["chat.jsonl"], template=template)
    destination = data_root.parent / "out" / template
    build(settings, data_root, inputs, destination)
    readme = (destination / settings.package.files.readme).read_text()
    assert "The planned memory, time and cost above are for `train.py`'s run." in readme
    assert ("trains 16-bit weights and optimizer states" in readme) is (template == "full")


def test_an_8bit_optimizer_brings_bitsandbytes_along(settings: Settings, data_root: Path) -> None:
    """8-bit AdamW states (a memory fix for full fine-tuning) come from bitsandbytes."""
    inputs = make_inputs(
        settings, data_root, ["chat.jsonl"], template="full", optimizer="adamw_8bit"
    )
    destination = data_root.parent / "out" / "pkg"
    build(settings, data_root, inputs, destination)
    requirements = (destination / settings.package.files.requirements).read_text().splitlines()
    assert requirements[-1] == settings.package.requirements.qlora[-1]


def test_a_hub_dataset_is_fetched_again_and_checked(settings: Settings, tmp_path: Path) -> None:
    """Two Parquet shards on the Hub: each is copied into the package and its sha256 checked."""
    rows = [json.loads(line) for line in (DATA / "chat.jsonl").read_text().splitlines()]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    shard = sink.getvalue().to_pybytes()
    shards = {f"data/train-0000{i}-of-00002.parquet": shard for i in range(2)}
    with serve_fake_hub() as (hub, url):
        siblings = [{"rfilename": name, "size": len(data)} for name, data in shards.items()]
        hub.add_dataset("acme/support", shards, siblings=siblings)
        access = HubAccess(endpoint=url, timeout_s=5, cache_dir=tmp_path / "hf-cache")
        found = Sources(settings.datasets, [], access, None)
        inputs = make_inputs(settings, found, ["hf:acme/support"])
        shutil.rmtree(tmp_path / "hf-cache")  # finalize fetches the files again
        result = build(settings, found, inputs, tmp_path / "out" / "pkg")
    (dataset,) = result.manifest["datasets"]
    assert [f["packaged_as"] for f in dataset["files"]] == [
        "data/source/1-1-train-00000-of-00002.parquet",
        "data/source/1-2-train-00001-of-00002.parquet",
    ]
    digest = hashlib.sha256(shard).hexdigest()
    assert {f["sha256"] for f in dataset["files"]} == {digest}
    data = result.manifest["data"]
    validation = data["validation"]["records"] if data["validation"] else 0
    assert data["train"]["records"] + validation == 24


def test_string_and_message_prompts_in_one_package_are_refused(
    settings: Settings, data_root: Path
) -> None:
    standard = (data_root / "preference.jsonl").read_text().splitlines()[:6]
    chat = (data_root / "preference_conversational.jsonl").read_text().splitlines()[6:]
    (data_root / "mixed_pairs.jsonl").write_text("\n".join([*standard, *chat]) + "\n")
    inputs = make_inputs(settings, data_root, ["mixed_pairs.jsonl"], template="dpo")
    out = data_root.parent / "out"
    with pytest.raises(UserError, match="mixes records whose prompt is a string"):
        build(settings, data_root, inputs, out / "pkg")
    assert list(out.iterdir()) == []


# --- atomic writes ------------------------------------------------------------------------------


class FullDisk(io.FileIO):
    """A file on a disk that fills up once `limit` bytes have gone to it."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(path, "xb")
        self._left = limit

    def write(self, data: Any) -> int:
        if len(data) > self._left:
            raise OSError(errno.ENOSPC, "No space left on device", self.name)
        self._left -= len(data)
        return super().write(data)


def fills_up_at(name: str, limit: int = 10):
    """An opener whose file `name` (a path suffix) hits a full disk; other files write normally."""

    def open_file(path: Path) -> io.FileIO:
        return FullDisk(path, limit) if path.as_posix().endswith(name) else io.FileIO(path, "xb")

    return open_file


@pytest.mark.parametrize("failing", ["data/train.jsonl", "trl.yaml", MANIFEST_NAME])
def test_a_full_disk_leaves_no_partial_package(
    settings: Settings, data_root: Path, failing: str
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    out = data_root.parent / "out"
    with pytest.raises(UserError) as exc:
        build(settings, data_root, inputs, out / "pkg", open_file=fills_up_at(failing))
    message = str(exc.value)
    assert f"The disk is full: writing {out / 'pkg' / failing} failed" in message
    assert f"Nothing was written to {out / 'pkg'}" in message
    assert list(out.iterdir()) == []


def test_a_file_that_cannot_be_read_is_not_called_a_write_failure(tmp_path: Path) -> None:
    destination = tmp_path / "out" / "pkg"
    unreadable = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "d.jsonl"))
    message = write_failure(unreadable, destination)
    assert message.startswith(f"No permission to read {tmp_path / 'd.jsonl'}")
    unwritable = PermissionError(errno.EROFS, "Read-only file system", str(destination))
    expected = f"No permission to write {destination}"
    assert write_failure(unwritable, destination).startswith(expected)


def test_a_failed_overwrite_keeps_the_old_package(settings: Settings, data_root: Path) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    destination = data_root.parent / "out" / "pkg"
    build(settings, data_root, inputs, destination)
    before = {p.relative_to(destination): p.read_bytes() for p in destination.rglob("*.*")}
    with pytest.raises(UserError, match="The disk is full"):
        build(
            settings,
            data_root,
            inputs,
            destination,
            overwrite=True,
            open_file=fills_up_at(MANIFEST_NAME),
        )
    after = {p.relative_to(destination): p.read_bytes() for p in destination.rglob("*.*")}
    assert after == before
    assert [p.name for p in destination.parent.iterdir()] == ["pkg"]


def test_an_existing_directory_is_replaced_only_when_asked(
    settings: Settings, data_root: Path
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    destination = data_root.parent / "out" / "pkg"
    destination.mkdir(parents=True)
    build(settings, data_root, inputs, destination)  # an empty directory is filled
    (destination / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty"):
        build(settings, data_root, inputs, destination)
    assert (destination / "notes.txt").exists()
    build(settings, data_root, inputs, destination, overwrite=True)
    assert not (destination / "notes.txt").exists()
    assert (destination / MANIFEST_NAME).is_file()
    assert [p.name for p in destination.parent.iterdir()] == ["pkg"]


def test_overwrite_replaces_a_package_and_nothing_else(settings: Settings, data_root: Path) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    folder = data_root.parent / "out" / "projects"
    (folder / "other-package").mkdir(parents=True)
    (folder / "other-package" / MANIFEST_NAME).write_text("name: other\n")
    with pytest.raises(UserError, match="not a training package"):
        build(settings, data_root, inputs, folder, overwrite=True)
    assert (folder / "other-package" / MANIFEST_NAME).read_text() == "name: other\n"
    assert sorted(p.name for p in folder.parent.iterdir()) == ["projects"]


def test_data_changed_since_validation_is_refused(settings: Settings, data_root: Path) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    path = data_root / "chat.jsonl"
    changed = path.read_text().replace("runny yolk", "runny yelk")  # the same size
    path.write_text(changed)
    assert check_dataset_files(inputs.datasets) == []  # the size alone cannot tell
    out = data_root.parent / "out"
    with pytest.raises(DatasetChangedError) as exc:
        build(settings, data_root, inputs, out / "pkg")
    assert "chat.jsonl changed since it was validated" in str(exc.value)
    assert "validate_datasets" in str(exc.value)
    assert list(out.iterdir()) == []


def test_a_dataset_of_another_size_is_caught_before_writing(
    settings: Settings, data_root: Path
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"])
    with (data_root / "chat.jsonl").open("a") as file:
        file.write("\n")
    (issue,) = check_dataset_files(inputs.datasets)
    assert issue.severity == "error" and issue.code == "dataset_changed"
    (data_root / "chat.jsonl").unlink()
    (gone,) = check_dataset_files(inputs.datasets)
    assert "is gone" in gone.message


# --- record layouts -----------------------------------------------------------------------------

CALL = {"type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'}}
# The call as TRL lays it out (arguments an object, content a string), as the package writes it.
TRL_CALL = {"type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 2}}}
ANSWER = {"role": "assistant", "content": "Blue."}


def example_of(settings: Settings, record: dict[str, Any]) -> Any:
    fmt = detect(record)
    assert fmt is not None
    datasets = settings.datasets
    checker = FormatChecker(datasets.formats, datasets.limits.max_quoted_chars)
    example, problems = checker.check(fmt, record)
    assert example is not None, problems
    return fmt, example


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]},
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Yo"},
                ]
            },
        ),
        (
            {"instruction": "Add", "input": "1 2", "output": "3", "system": "Be terse."},
            {
                "messages": [
                    {"role": "system", "content": "Be terse."},
                    {"role": "user", "content": "Add\n\n1 2"},
                    {"role": "assistant", "content": "3"},
                ]
            },
        ),
        ({"prompt": "2+2=", "completion": "4"}, {"prompt": "2+2=", "completion": "4"}),
        (
            {
                "prompt": [{"role": "user", "content": "2+2?"}],
                "completion": [{"role": "assistant", "content": "4"}],
            },
            {
                "prompt": [{"role": "user", "content": "2+2?"}],
                "completion": [{"role": "assistant", "content": "4"}],
            },
        ),
        ({"text": "Once upon a time"}, {"text": "Once upon a time"}),
        (
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
            {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        ),
        (
            {  # implicit prompt: the turns both answers share
                "chosen": [
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "4"},
                ],
                "rejected": [
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "5"},
                ],
            },
            {
                "prompt": [{"role": "user", "content": "2+2?"}],
                "chosen": [{"role": "assistant", "content": "4"}],
                "rejected": [{"role": "assistant", "content": "5"}],
            },
        ),
        (  # TRL's unpaired preference, standard: KTOTrainer's layout as it is
            {"prompt": "2+2=", "completion": "5", "label": False},
            {"prompt": "2+2=", "completion": "5", "label": False},
        ),
        (  # conversational, with a system turn and a tool call in the answer
            {
                "prompt": [
                    {"role": "system", "content": "Use the calculator."},
                    {"role": "user", "content": "2+2?"},
                ],
                "completion": [
                    {"role": "assistant", "content": None, "tool_calls": [CALL]},
                    {"role": "tool", "content": "4"},
                    {"role": "assistant", "content": "4"},
                ],
                "label": True,
            },
            {
                "prompt": [
                    {"role": "system", "content": "Use the calculator."},
                    {"role": "user", "content": "2+2?"},
                ],
                "completion": [
                    {"role": "assistant", "content": "", "tool_calls": [TRL_CALL]},
                    {"role": "tool", "content": "4"},
                    {"role": "assistant", "content": "4"},
                ],
                "label": True,
            },
        ),
    ],
)
def test_each_format_becomes_the_layout_trl_reads(
    settings: Settings, record: dict[str, Any], expected: dict[str, Any]
) -> None:
    fmt, example = example_of(settings, record)
    shape = package_shape([fmt])
    assert trl_record(shape, example) == expected


def test_prompt_completion_among_conversations_becomes_one_conversation(
    settings: Settings,
) -> None:
    record = {"prompt": "2+2=", "completion": "4"}
    fmt, example = example_of(settings, record)
    shape = package_shape([Format.CHAT, fmt])
    assert shape is Shape.MESSAGES
    assert trl_record(shape, example) == {
        "messages": [{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}]
    }


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ([Format.UNPAIRED_PREFERENCE, Format.PREFERENCE], "cannot mix"),
        ([Format.TEXT, Format.CHAT], "cannot mix"),
        ([Format.PREFERENCE, Format.CHAT], "cannot mix"),
    ],
)
def test_data_that_cannot_train_together_is_refused(formats: list[Format], message: str) -> None:
    with pytest.raises(UserError, match=message):
        package_shape(formats)


def test_axolotl_reads_each_layout_or_is_told_nothing() -> None:
    path = "data/train.jsonl"
    assert axolotl_dataset(Shape.MESSAGES, True, path) == {
        "path": path,
        "ds_type": "json",
        "type": "chat_template",
        "field_messages": "messages",
    }
    assert axolotl_dataset(Shape.TEXT, False, path)["type"] == "completion"
    assert axolotl_dataset(Shape.PREFERENCE, True, path)["type"] == "passthrough"
    custom = axolotl_dataset(Shape.PROMPT_COMPLETION, False, path)["type"]
    assert custom["field_instruction"] == "prompt" and custom["field_output"] == "completion"
    assert axolotl_dataset(Shape.PROMPT_COMPLETION, True, path) is None
    # KTO: Axolotl's user-defined strategy reads string records with these fields
    assert axolotl_dataset(Shape.UNPAIRED, False, path) == {
        "path": path,
        "split": "train",
        "type": {
            "field_prompt": "prompt",
            "field_completion": "completion",
            "field_label": "label",
        },
    }
    assert axolotl_dataset(Shape.UNPAIRED, True, path) is None


def test_converted_examples_take_a_supervised_layout(settings: Settings) -> None:
    """convert: "sft": a pair keeps its chosen side (an implicit-prompt pair of strings has no
    prompt but its text), a desirable answer its prompt and completion."""
    implicit = {"chosen": "The sky is blue.", "rejected": "The sky is green."}
    _, pair = example_of(settings, implicit)
    converted = to_sft(pair)
    assert converted is not None and sft_format(converted) is Format.PROMPT_COMPLETION
    assert trl_record(Shape.PROMPT_COMPLETION, converted) == {
        "prompt": "",
        "completion": "The sky is blue.",
    }
    liked = {"prompt": [{"role": "user", "content": "Sky?"}], "completion": [ANSWER], "label": True}
    _, answer = example_of(settings, liked)
    converted = to_sft(answer)
    assert converted is not None and sft_format(converted) is Format.CHAT
    assert trl_record(Shape.MESSAGES, converted) == {
        "messages": [{"role": "user", "content": "Sky?"}, ANSWER]
    }
    disliked = {**liked, "label": False}
    assert to_sft(example_of(settings, disliked)[1]) is None


def test_an_unpaired_conversation_is_judged_on_its_final_assistant_turns() -> None:
    """An unpaired example with no prompt of its own (a conversation and a label): the turns
    before its final assistant turn(s) are the prompt."""
    texts = ["2+2?", "4", "3+3?", "6"]
    messages = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": text}
        for n, text in enumerate(texts)
    ]
    turns = [(Role(m["role"]), m["content"]) for m in messages]
    example = Example(Format.CHAT, turns, label=True)  # messages and a label (no prompt)
    record = trl_record(Shape.UNPAIRED, example)
    assert [m["content"] for m in record["prompt"]] == ["2+2?", "4", "3+3?"]
    assert record["completion"] == [{"role": "assistant", "content": "6"}]
    assert record["label"] is True


# --- checks -------------------------------------------------------------------------------------


def test_qlora_on_a_gpu_outside_the_catalog_is_an_error(
    settings: Settings, data_root: Path
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"], template="qlora", gpu="Apple M4")
    codes = {issue.code: issue for issue in check_package(inputs)}
    assert codes["qlora_unsupported_hardware"].severity == "error"
    with pytest.raises(UserError, match="NVIDIA GPU with CUDA"):
        raise_errors(check_package(inputs))
    lora = make_inputs(settings, data_root, ["chat.jsonl"], template="lora", gpu="Apple M4")
    assert "qlora_unsupported_hardware" not in {i.code for i in check_package(lora)}


def test_steps_checked_at_other_settings_are_warned_about(
    settings: Settings, data_root: Path
) -> None:
    inputs = make_inputs(settings, data_root, ["chat.jsonl"], max_seq_length=512)
    codes = {issue.code: issue.severity for issue in check_package(inputs)}
    assert codes["datasets_length_checked_at_other_max"] == "warning"
    raise_errors(check_package(inputs))  # warnings alone do not stop the package


def test_a_step_recorded_in_another_form_names_the_tool_to_run_again() -> None:
    with pytest.raises(UserError) as exc:
        step_result(ModelDetails, {"model_id": "acme/x"}, "model", "select_model")
    assert "model step was recorded in a form" in str(exc.value)
    assert "params" in str(exc.value) and "Run select_model again" in str(exc.value)


# --- where packages go --------------------------------------------------------------------------


def test_the_default_destination_is_named_after_the_draft(
    settings: Settings, tmp_path: Path
) -> None:
    folders = owner_folders(settings.package.output, tmp_path / "packages", "alice")
    path = package_destination(folders, None, "Support-Bot v1: Café!", "abc123", 40)
    assert path == folders[0] / "support-bot-v1-cafe-abc123"
    assert default_name("   ", "abc123", 40) == "abc123"
    assert default_name("x" * 100, "id", 5) == "xxxxx-id"


def test_each_owner_has_a_folder_of_their_own() -> None:
    names = {owner: owner_folder(owner, 40) for owner in ("alice", "a.b", "a-b", "../..", "⚙")}
    assert names["alice"].startswith("alice-") and len(set(names.values())) == len(names)
    assert names["../.."] and "/" not in names["../.."] and ".." not in names["../.."]
    assert owner_folder("alice", 40) == names["alice"]  # stable across calls and restarts


def test_output_dir_stays_inside_the_owner_s_folders(settings: Settings, tmp_path: Path) -> None:
    root, extra = tmp_path / "packages", tmp_path / "elsewhere"
    output = settings.package.output.model_copy(update={"extra_roots": [extra]})
    mine, theirs = owner_folders(output, root, "alice"), owner_folders(output, root, "bob")
    assert [folder.parent for folder in mine] == [root, extra]
    assert package_destination(mine, "v1", "t", "id", 40) == mine[0] / "v1"
    assert package_destination(mine, str(mine[1] / "x"), "t", "id", 40) == mine[1] / "x"
    for outside in (
        str(tmp_path / "other"),
        "../escape",
        str(mine[0]),
        str(theirs[0] / "v1"),
        f"../{theirs[0].name}/v1",
        str(extra / "shared"),
    ):
        with pytest.raises(UserError, match="outside your package folder") as refused:
            package_destination(mine, outside, "t", "id", 40)
        assert str(tmp_path) not in str(refused.value)
    mine[0].mkdir(parents=True)
    (mine[0] / "link").symlink_to(theirs[0].parent)
    with pytest.raises(UserError, match="outside your package folder"):
        package_destination(mine, f"link/{theirs[0].name}/v1", "t", "id", 40)


def test_remove_package_removes_only_a_package_of_the_owner(tmp_path: Path) -> None:
    mine = tmp_path / "alice-1"
    (mine / "pkg").mkdir(parents=True)
    (mine / "pkg" / MANIFEST_NAME).write_text("name: pkg\n")
    (mine / "notes").mkdir()
    (tmp_path / "bob-2" / "pkg").mkdir(parents=True)
    (tmp_path / "bob-2" / "pkg" / MANIFEST_NAME).write_text("name: pkg\n")
    assert remove_package(mine / "notes", [mine]) is False and (mine / "notes").exists()
    assert remove_package(tmp_path / "bob-2" / "pkg", [mine]) is False
    assert (tmp_path / "bob-2" / "pkg").exists()
    assert remove_package(mine / "pkg", [mine]) is True and not (mine / "pkg").exists()


# --- what a killed write leaves behind ----------------------------------------------------------


def leftover(folder: Path, name: str, kind: str, token: str) -> Path:
    path = folder / f".{name}.{kind}-{token}"
    (path / "data").mkdir(parents=True)
    (path / "data" / "train.jsonl").write_text("copied data\n")
    return path


def test_the_sweep_clears_what_killed_writes_left_and_spares_live_ones(tmp_path: Path) -> None:
    folder = tmp_path / "alice-1"
    stale = leftover(folder, "v1", "partial", "0badf00d")
    live = leftover(folder / "nested", "v2", "partial", "cafebabe")
    # killed between moving the old v3 aside and renaming the new one into place
    aside = tmp_path / "alice-1" / ".v3.replaced-deadbeef"
    (aside / "v3").mkdir(parents=True)
    (aside / "v3" / MANIFEST_NAME).write_text("name: v3\n")
    # killed after the replacement arrived, before the old copy was removed
    done = leftover(folder, "v4", "replaced", "feedface")
    (folder / "v4").mkdir()
    (folder / "v4" / MANIFEST_NAME).write_text("name: new v4\n")
    (folder / ".v5.lock-12345678").write_text("")
    with FileLock(folder / "nested" / ".v2.lock-cafebabe", timeout=0):
        cleared = sweep_leftovers(folder)
    assert not stale.exists() and live.exists()
    assert (folder / "v3" / MANIFEST_NAME).read_text() == "name: v3\n" and not aside.exists()
    assert (folder / "v4" / MANIFEST_NAME).read_text() == "name: new v4\n" and not done.exists()
    assert set(cleared) == {stale, folder / "v3", aside, done}
    assert sorted(p.name for p in folder.iterdir()) == ["nested", "v3", "v4"]


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["/abs/train.jsonl", "../train.jsonl", "data\\train.jsonl", ""])
def test_file_names_must_stay_inside_the_package(settings: Settings, bad: str) -> None:
    values = settings.package.files.model_dump()
    with pytest.raises(ValueError, match="relative path inside the package"):
        FilesConfig.model_validate({**values, "train_data": bad})


def test_file_names_must_differ(settings: Settings) -> None:
    values = settings.package.files.model_dump()
    with pytest.raises(ValueError, match=r"share a path: package\.yaml"):
        FilesConfig.model_validate({**values, "readme": MANIFEST_NAME})


def test_requirements_must_be_requirements() -> None:
    assert RequirementsConfig(common=["trl==1.13.0", "torch>=2.8,<3"], qlora=[]).common
    with pytest.raises(ValueError, match="not a requirement"):
        RequirementsConfig(common=["trl = 1.13"], qlora=[])


def test_the_package_pins_are_the_ones_the_training_proof_runs(settings: Settings) -> None:
    proven = {
        line.split("==")[0]: line
        for line in TRAINING_REQUIREMENTS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    pinned = [line for line in settings.package.requirements.common if "==" in line]
    assert pinned and all(proven.get(line.split("==")[0]) == line for line in pinned)
