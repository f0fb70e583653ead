"""finalize_package through an in-process MCP client: a draft built with the real tools, the
checks across steps, warnings confirmed by elicitation or by argument, where packages may go,
data changed since validation, and a read-only directory."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client
from mcp.types import ElicitRequestParams, ElicitResult

from server.app import build_server
from server.settings import Secrets, Settings, load_settings
from server.state import local_user
from tests.fake_hub import FakeHub
from tests.support import connect, isolated_env, llama_config
from tools.package_builder.destination import owner_folder

DATA = Path(__file__).parent / "data" / "datasets"
MODEL_ID = "Qwen/Qwen2.5-0.5B-Instruct"  # in the offline catalog: no Hub needed
HUB = "TRAINING_PACKAGE_MCP__MODELS__HUB__"
OFFLINE_WARNING = "details come from the curated catalog"
FP16 = {"bf16": False, "fp16": True}  # what a GPU without bf16 (a T4) trains in


def package_settings(tmp_path: Path, *roots: Path, **extra: str) -> Settings:
    """Packages under tmp_path/packages, datasets from `roots` (default: a copy of the test
    datasets in tmp_path/data), and a closed Hub that fails at once."""
    if not roots:
        shutil.copytree(DATA, tmp_path / "data")
        roots = (tmp_path / "data",)
    env = isolated_env(
        tmp_path,
        TRAINING_PACKAGE_MCP__PACKAGE__OUTPUT__ROOT=str(tmp_path / "packages"),
        TRAINING_PACKAGE_MCP__DATASETS__ROOTS=json.dumps([str(root) for root in roots]),
        TRAINING_PACKAGE_MCP__DATASETS__BUNDLED_SAMPLES="false",
        **{
            f"{HUB}TIMEOUT_S": "0.5",
            f"{HUB}RETRIES__BASE_DELAY_S": "0.01",
            f"{HUB}RETRIES__MAX_DELAY_S": "0.05",
        },
        **extra,
    )
    return load_settings(env=env)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return result.structured_content


async def error_of(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


async def complete_draft(
    client: Client,
    *,
    title: str = "support bot",
    model: str = MODEL_ID,
    template: str = "lora",
    datasets: tuple[str, ...] = ("chat.jsonl",),
    target: str = "a10g-small",
    overrides: dict[str, Any] | None = None,
    validation_split: float = 0.2,
    reading: dict[str, Any] | None = None,
) -> str:
    """A draft with all four steps taken through the real tools; its id. `reading`: more
    validate_datasets arguments (columns, drop_invalid)."""
    draft_id = (await call(client, "create_draft", {"title": title}))["draft_id"]
    await call(client, "select_model", {"draft_id": draft_id, "model_id": model})
    await call(
        client,
        "apply_template",
        {
            "draft_id": draft_id,
            "template": template,
            "overrides": {"max_seq_length": 128, **(overrides or {})},
        },
    )
    validated = await call(
        client,
        "validate_datasets",
        {
            "draft_id": draft_id,
            "datasets": list(datasets),
            "validation_split": validation_split,
            **(reading or {}),
        },
    )
    assert validated["valid"], validated["summary"]
    await call(client, "estimate_deployment", {"draft_id": draft_id, "select": target})
    return draft_id


async def read_draft(client: Client, draft_id: str) -> dict[str, Any]:
    (content,) = (await client.read_resource(f"package://drafts/{draft_id}")).contents
    return json.loads(content.text)  # type: ignore[union-attr]


def contents(path: Path) -> list[str]:
    """The files under `path` (empty folders, such as an owner's, are no package)."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def my_packages(tmp_path: Path) -> Path:
    """The local user's folder in package_settings' package root."""
    return tmp_path / "packages" / owner_folder(local_user(), 40)


# --- the tool -----------------------------------------------------------------------------------


async def test_finalize_package_is_listed_compactly(tmp_path: Path) -> None:
    async with connect(package_settings(tmp_path)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    tool = tools["finalize_package"]
    assert set(tool.input_schema["properties"]) == {
        "draft_id",
        "output_dir",
        "overwrite",
        "accept_warnings",
    }
    assert tool.input_schema["required"] == ["draft_id"]
    assert tool.annotations.destructive_hint is True and tool.annotations.read_only_hint is False
    seen = tool.model_dump(by_alias=True, include={"name", "title", "description", "input_schema"})
    assert len(json.dumps(seen, separators=(",", ":"))) < 800  # what the model reads of it


async def test_an_unfinished_draft_names_the_next_step(tmp_path: Path) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = (await call(client, "create_draft", {}))["draft_id"]
        message = await error_of(client, "finalize_package", {"draft_id": draft_id})
        missing = await error_of(client, "finalize_package", {"draft_id": "nope"})
    assert "model, config, datasets, deployment step(s) are not valid" in message
    assert "select_model" in message
    assert "No draft 'nope'" in missing
    assert not (tmp_path / "packages").exists()


async def test_warnings_come_back_as_fields_then_accept_warnings_writes(tmp_path: Path) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await complete_draft(client)
        held = await call(client, "finalize_package", {"draft_id": draft_id})
        assert held["written"] is False and held["path"] is None
        assert any(OFFLINE_WARNING in w["message"] for w in held["warnings"])
        assert "accept_warnings=true" in held["next_action"]
        assert contents(tmp_path / "packages") == []

        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
        draft = await read_draft(client, draft_id)
        await call(client, "apply_template", {"draft_id": draft_id, "template": "lora"})
        changed = await read_draft(client, draft_id)
    path = Path(written["path"])
    assert written["written"] is True
    assert path == my_packages(tmp_path) / f"support-bot-{draft_id}"
    assert set(written["files"]) == {str(p.relative_to(path)) for p in path.rglob("*.*")}
    manifest = yaml.safe_load((path / "package.yaml").read_text())
    assert "manifest" not in written  # it stays on disk: the assistant reads a summary
    assert written["summary"].startswith(f"{MODEL_ID}, lora (sft), ")
    assert "on a10g-small: about" in written["summary"]
    assert manifest["draft"]["id"] == draft_id and manifest["model"]["id"] == MODEL_ID
    assert manifest["config"]["template"] == "lora"
    assert manifest["config"]["values"]["max_seq_length"] == 128
    assert manifest["deployment"]["target"] == "a10g-small"
    assert manifest["deployment"]["gpu"] == "A10G"
    (dataset,) = manifest["datasets"]
    assert dataset["ref"] == "chat.jsonl" and dataset["format"] == "chat"
    assert dataset["records"] == dataset["train_records"] + dataset["validation_records"]
    assert [w["message"] for w in manifest["accepted_warnings"]] == [
        w["message"] for w in held["warnings"]
    ]
    assert manifest["generator"]["name"] == "training-package-mcp"
    assert "Train with TRL + PEFT" in (path / "README.md").read_text()
    assert draft["package"]["path"] == str(path)
    assert draft["package"]["draft_version"] == manifest["draft"]["version"]
    assert draft["next_action"] == (
        f'finalized: the training package is in {path}; launch_training(draft_id="{draft_id}") '
        "runs it"
    )
    assert changed["package"] is None and "finalize_package" in changed["next_action"]


async def test_the_user_is_asked_when_the_client_can_elicit(tmp_path: Path) -> None:
    questions: list[str] = []
    answers = iter(["decline", "accept"])

    async def answer(_: Any, params: ElicitRequestParams) -> ElicitResult:
        questions.append(params.message)
        action = next(answers)
        return ElicitResult(action=action, content={"write": True} if action == "accept" else None)

    settings = package_settings(tmp_path)
    server = build_server(settings, Secrets())
    async with Client(server, raise_exceptions=True, elicitation_callback=answer) as client:
        draft_id = await complete_draft(client)
        declined = await call(client, "finalize_package", {"draft_id": draft_id})
        accepted = await call(client, "finalize_package", {"draft_id": draft_id})
    assert len(questions) == 2 and OFFLINE_WARNING in questions[0]
    assert "Write it anyway?" in questions[0]
    assert declined["written"] is False and "chose not to write" in declined["next_action"]
    assert accepted["written"] is True and Path(accepted["path"]).is_dir()


# --- checks across the steps ------------------------------------------------------------------


async def test_a_gpu_without_bf16_is_chosen_only_with_fp16(tmp_path: Path) -> None:
    """With bf16 on, the T4 is refused when chosen, with the fix; after the fix it is taken and
    the package trains in fp16."""
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await complete_draft(client)
        message = await error_of(
            client, "estimate_deployment", {"draft_id": draft_id, "select": "t4-small"}
        )
        assert "t4-small runs on a T4, which has no bf16" in message
        assert 'overrides {"bf16": false, "fp16": true}, or pick ' in message
        fixed = await complete_draft(client, target="t4-small", overrides=FP16)
        written = await call(
            client, "finalize_package", {"draft_id": fixed, "accept_warnings": True}
        )
    manifest = yaml.safe_load((Path(written["path"]) / "package.yaml").read_text())
    assert written["written"] is True and manifest["deployment"]["target"] == "t4-small"
    assert {k: manifest["config"]["values"][k] for k in FP16} == FP16


async def test_max_seq_length_beyond_a_later_models_context_is_caught(
    tmp_path: Path, fake_hub: tuple[FakeHub, str]
) -> None:
    """The config fit the first model; the model chosen after it has a shorter context: the
    config is checked again as the model is chosen, and nothing is written until it is fixed."""
    hub, url = fake_hub
    hub.add_model(
        "acme/short-1b",
        config=llama_config(max_position_embeddings=1024),
        safetensors={"parameters": {"BF16": 1_235_814_400}, "total": 1_235_814_400},
        library_name="transformers",
        pipeline_tag="text-generation",
    )
    settings = package_settings(tmp_path, **{f"{HUB}ENDPOINT": url})
    async with connect(settings) as client:
        draft_id = await complete_draft(
            client, model="acme/chat-1b", overrides={"max_seq_length": 2048}
        )
        await call(client, "select_model", {"draft_id": draft_id, "model_id": "acme/short-1b"})
        draft = await read_draft(client, draft_id)
        message = await error_of(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    (error,) = [i for i in draft["config"]["issues"] if i["severity"] == "error"]
    assert (
        "max_seq_length 2048 exceeds the context length of acme/short-1b (1024" in error["message"]
    )
    assert error["fix"] == "Set max_seq_length to 1024 or less."
    assert "config (invalid)" in message and "Nothing stale or invalid is written" in message


async def test_dpo_without_preference_data_is_refused(tmp_path: Path) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = (await call(client, "create_draft", {}))["draft_id"]
        await call(client, "select_model", {"draft_id": draft_id, "model_id": MODEL_ID})
        await call(client, "apply_template", {"draft_id": draft_id, "template": "dpo"})
        await call(client, "validate_datasets", {"draft_id": draft_id, "datasets": ["chat.jsonl"]})
        message = await error_of(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    assert "datasets" in message and "not valid" in message


async def test_a_kto_package_trains_the_labelled_answers_as_trl_and_axolotl_read_them(
    tmp_path: Path,
) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await complete_draft(
            client, template="kto", datasets=("unpaired_preference.jsonl",)
        )
        written = await call(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    package = Path(written["path"])
    manifest = yaml.safe_load((package / "package.yaml").read_text())
    trl = yaml.safe_load((package / manifest["files"]["trl_config"]).read_text())
    axolotl = yaml.safe_load((package / manifest["files"]["axolotl_config"]).read_text())
    assert (trl["trainer"], trl["config_class"]) == ("KTOTrainer", "KTOConfig")
    assert trl["args"]["desirable_weight"] == trl["args"]["undesirable_weight"] == 1.0
    assert manifest["data"]["shape"] == "unpaired_preference"
    records = [
        json.loads(line)
        for name in ("train", "validation")
        for line in (package / manifest["data"][name]["path"]).read_text().splitlines()
    ]
    assert len(records) == 12 and {tuple(r) for r in records} == {("prompt", "completion", "label")}
    assert sorted(r["label"] for r in records) == [False] * 6 + [True] * 6
    assert axolotl["rl"] == "kto" and axolotl["remove_unused_columns"] is False
    assert axolotl["datasets"][0]["type"]["field_label"] == "label"


async def test_a_later_change_is_re_estimated_before_anything_is_written(tmp_path: Path) -> None:
    async with connect(package_settings(tmp_path)) as client:
        draft_id = await complete_draft(client)
        applied = await call(
            client,
            "apply_template",
            {"draft_id": draft_id, "template": "lora", "overrides": {"lora_r": 8}},
        )
        held = await call(client, "finalize_package", {"draft_id": draft_id})
        draft = await read_draft(client, draft_id)
    assert applied["changes"][0].startswith("deployment: re-estimated")
    assert draft["deployment"]["payload"]["inputs"]["lora_r"] == 8
    assert held["written"] is False  # the offline catalog's warning still asks for a yes


# --- data changed since validation ----------------------------------------------------------


@pytest.mark.parametrize("change", ["append", "same_size"])
async def test_a_dataset_changed_since_validation_is_refused(tmp_path: Path, change: str) -> None:
    settings = package_settings(tmp_path)
    async with connect(settings) as client:
        draft_id = await complete_draft(client)
        path = tmp_path / "data" / "chat.jsonl"
        if change == "append":
            path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")
        else:
            path.write_text(path.read_text().replace("runny yolk", "runny yelk"))
        message = await error_of(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    assert "Dataset chat.jsonl changed since it was validated" in message
    assert "validate_datasets" in message
    assert contents(tmp_path / "packages") == []


# --- where the package goes -------------------------------------------------------------------


async def test_output_dir_is_checked_and_an_existing_package_kept(tmp_path: Path) -> None:
    settings = package_settings(tmp_path)
    async with connect(settings) as client:
        draft_id = await complete_draft(client)
        args = {"draft_id": draft_id, "accept_warnings": True, "output_dir": "v1"}
        first = await call(client, "finalize_package", args)
        again = await error_of(client, "finalize_package", args)
        replaced = await call(client, "finalize_package", {**args, "overwrite": True})
        outside = await error_of(
            client, "finalize_package", {**args, "output_dir": str(tmp_path / "elsewhere")}
        )
    assert first["path"] == replaced["path"] == str(my_packages(tmp_path) / "v1")
    assert "already exists and is not empty" in again and "overwrite=true" in again
    assert "outside your package folder" in outside
    assert not (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in my_packages(tmp_path).iterdir()) == ["v1"]


async def test_a_taken_output_dir_is_refused_before_anyone_is_asked(tmp_path: Path) -> None:
    """A yes to the warnings could not write over a folder that is not empty (nor replace one
    that is no package), so the folder is refused first, with what to do, and nobody is asked;
    without elicitation the warnings are not returned with a retry that would fail too."""
    questions: list[str] = []

    async def yes(_: Any, params: ElicitRequestParams) -> ElicitResult:
        questions.append(params.message)
        return ElicitResult(action="accept", content={"write": True})

    settings = package_settings(tmp_path)
    taken = my_packages(tmp_path) / "taken"
    server = build_server(settings, Secrets())
    async with Client(server, raise_exceptions=True, elicitation_callback=yes) as client:
        draft_id = await complete_draft(client)
        taken.mkdir(parents=True)
        (taken / "notes.txt").write_text("mine")
        args = {"draft_id": draft_id, "output_dir": "taken"}
        refused = await error_of(client, "finalize_package", args)
        replacing = await error_of(client, "finalize_package", {**args, "overwrite": True})
    async with connect(settings) as client:
        unasked = await error_of(client, "finalize_package", args)
    assert questions == []
    assert f"{taken} already exists and is not empty" in refused
    assert "pass overwrite=true" in refused and "choose another output_dir" in refused
    assert "is not a training package" in replacing and "another output_dir" in replacing
    assert "already exists and is not empty" in unasked
    assert contents(taken) == ["notes.txt"] and (taken / "notes.txt").read_text() == "mine"


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` made unwritable for real: mode 0555, and for root (whom modes do not stop) the
    immutable attribute; skips when the file system cannot refuse this user a write."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    immutable = False
    try:
        if os.geteuid() == 0 and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(path)], check=False).returncode == 0
        probe = path / ".probe"
        try:
            probe.mkdir()
        except OSError:
            pass
        else:
            probe.rmdir()
            pytest.skip(f"{path} stays writable for this user on this file system")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


async def test_a_read_only_directory_gives_a_clear_error_and_no_package(tmp_path: Path) -> None:
    settings = package_settings(tmp_path)
    locked = my_packages(tmp_path) / "locked"
    async with connect(settings) as client:
        draft_id = await complete_draft(client)
        with read_only(locked):
            message = await error_of(
                client,
                "finalize_package",
                {"draft_id": draft_id, "accept_warnings": True, "output_dir": "locked/pkg"},
            )
            assert os.listdir(locked) == []
    assert f"No permission to write {locked / 'pkg'}" in message
    assert "Choose an output_dir you can write to" in message
    assert f"Nothing was written to {locked / 'pkg'}" in message
