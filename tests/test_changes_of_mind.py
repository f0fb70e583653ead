"""A user who changes their mind: every later step follows, or says it is stale and why.

Each test takes the wizard to the end through the real tools, changes one earlier choice as a
person would in conversation, and checks what the draft says afterwards: the steps redone in the
same call, the steps marked stale with their reason, the next call, and that nothing stale can
be written as a package.
"""

from contextlib import AbstractAsyncContextManager
from pathlib import Path

from mcp import Client

from tests.support import connect
from tests.test_package_mcp import (
    MODEL_ID,
    call,
    complete_draft,
    contents,
    error_of,
    package_settings,
    read_draft,
)

BIG_MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # in the offline catalog, as MODEL_ID is


def connect_to(tmp_path: Path) -> AbstractAsyncContextManager[Client]:
    """A client on a server whose datasets are a copy of the test data in tmp_path/data."""
    return connect(package_settings(tmp_path))


async def state(client: Client, draft_id: str) -> dict[str, dict]:
    """get_draft's steps, by name."""
    seen = await call(client, "get_draft", {"draft_id": draft_id})
    return {line["step"]: line for line in seen["steps"]}


async def test_a_new_model_rechecks_the_config_and_stales_what_it_cannot_redo(
    tmp_path: Path,
) -> None:
    async with connect_to(tmp_path) as client:
        draft_id = await complete_draft(client, target="a10g-small")
        chosen = await call(client, "select_model", {"draft_id": draft_id, "model_id": BIG_MODEL})
        steps = await state(client, draft_id)
        message = await error_of(
            client, "finalize_package", {"draft_id": draft_id, "accept_warnings": True}
        )
    assert chosen["changes"][0].startswith("config: re-checked")
    assert steps["config"]["status"] == "valid" and BIG_MODEL not in steps["config"]["summary"]
    for stale in ("datasets", "deployment"):
        assert steps[stale]["status"] == "stale", steps[stale]
        assert f"the model changed from {MODEL_ID} to {BIG_MODEL}" in steps[stale]["reason"]
    assert "waits for the datasets step" in steps["deployment"]["reason"]
    assert chosen["next_action"].endswith(
        f'validate_datasets(draft_id="{draft_id}", datasets=["chat.jsonl"])'
    )
    assert "datasets, deployment step(s) are not valid" in message
    assert contents(tmp_path / "packages") == []


async def test_validating_again_re_estimates_and_drops_a_choice_that_no_longer_fits(
    tmp_path: Path,
) -> None:
    async with connect_to(tmp_path) as client:
        # fully fine-tuned, an 8B model needs ~18 bytes per weight: no 24 GB card holds it
        draft_id = await complete_draft(client, template="full", target="a10g-small")
        await call(client, "select_model", {"draft_id": draft_id, "model_id": BIG_MODEL})
        validated = await call(
            client, "validate_datasets", {"draft_id": draft_id, "datasets": ["chat.jsonl"]}
        )
        draft = await read_draft(client, draft_id)
    (told,) = validated["changes"]
    assert told.startswith(
        "deployment: re-estimated: the draft's choice a10g-small was dropped: it no longer fits"
    )
    deployment = draft["deployment"]
    assert deployment["status"] == "invalid" and deployment["payload"]["selected"] is None
    assert deployment["payload"]["inputs"]["model"] == BIG_MODEL
    assert "select=" in draft["next_action"]


async def test_more_data_re_estimates_the_chosen_target(tmp_path: Path) -> None:
    async with connect_to(tmp_path) as client:
        draft_id = await complete_draft(client, target="a10g-small")
        before = (await read_draft(client, draft_id))["deployment"]["payload"]["selected"]
        lines = (tmp_path / "data" / "chat.jsonl").read_text().splitlines()
        grown = [line.replace("Six", f"Six ({i})") for i in range(40) for line in lines]
        (tmp_path / "data" / "more.jsonl").write_text("\n".join(grown) + "\n")
        validated = await call(
            client, "validate_datasets", {"draft_id": draft_id, "datasets": ["more.jsonl"]}
        )
        after = (await read_draft(client, draft_id))["deployment"]
    assert validated["changes"][0].startswith("deployment: re-estimated: a10g-small kept")
    assert after["status"] == "valid"
    assert after["payload"]["selected"]["hours"] > before["hours"]
    assert after["payload"]["selected"]["cost_usd"] > before["cost_usd"]


async def test_a_shorter_context_makes_the_config_invalid_at_once(tmp_path: Path) -> None:
    async with connect_to(tmp_path) as client:
        draft_id = await complete_draft(client, overrides={"max_seq_length": 16384}, target="h200")
        chosen = await call(
            client,
            "select_model",
            {"draft_id": draft_id, "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        )
        steps = await state(client, draft_id)
    assert steps["config"]["status"] == "invalid"
    assert chosen["changes"][0] == "config: re-checked against the new facts: 1 error(s)"
    assert chosen["next_action"].startswith("fix the config step's errors, then apply_template")


async def test_a_config_change_re_estimates_without_touching_the_data(tmp_path: Path) -> None:
    async with connect_to(tmp_path) as client:
        draft_id = await complete_draft(client)
        applied = await call(
            client,
            "apply_template",
            {"draft_id": draft_id, "template": "lora", "overrides": {"lora_r": 8}},
        )
        steps = await state(client, draft_id)
    assert steps["datasets"]["status"] == "valid"  # lora_r shapes no token count
    assert applied["changes"][0].startswith("deployment: re-estimated")
    assert steps["deployment"]["status"] == "valid"
    assert applied["next_action"] == f'finalize_package(draft_id="{draft_id}")'


async def test_full_fine_tuning_on_a_big_model_drops_the_small_gpu(tmp_path: Path) -> None:
    """lora -> full on an 8B model: the estimate follows at once; the L4 chosen for LoRA is
    dropped with the figures, and the learning rate LoRA used is named for the user to decide."""
    async with connect_to(tmp_path) as client:
        draft_id = await complete_draft(
            client, model=BIG_MODEL, target="l4x1", overrides={"learning_rate": 1e-4}
        )
        switched = await call(client, "apply_template", {"draft_id": draft_id, "template": "full"})
        steps = await state(client, draft_id)
    (told,) = switched["changes"]
    assert "the draft's choice l4x1 was dropped: it no longer fits" in told
    assert steps["deployment"]["status"] == "invalid"
    assert any("learning_rate 0.0001 is carried over" in note for note in switched["notes"])
    assert "select=" in switched["next_action"]
