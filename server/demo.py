"""`training-package-mcp demo`: the wizard driven by a real MCP client, printed as it happens.

The server runs in-process over the SDK's in-memory transport, on a temporary drafts database,
so the demo needs no network and leaves nothing behind.
"""

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from mcp import Client
from mcp.types import CallToolResult, ElicitRequestParams, ElicitResult, TextResourceContents

from server.app import build_server
from server.logging import configure_logging
from server.settings import Secrets, Settings
from tools.deployment_estimator.live_prices import MICRO, MINUTES_PER_HOUR
from tools.training_launcher.records import RUN_KEY_ENV

RULE = "-" * 72


class DemoFailed(Exception):
    """A call in the demo came back with an error."""


class Narrator:
    """Prints each call the demo makes and what came back, readably."""

    def __init__(self, out: TextIO):
        self.out = out
        self.client: Client
        self.step = 0

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def _show_call(self, label: str, arguments: dict[str, Any] | None = None) -> None:
        self.step += 1
        self.say(f"\n{RULE}\n{self.step}. {label}")
        if arguments:
            self.say("   arguments: " + json.dumps(arguments, ensure_ascii=False))

    def _show(self, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        self.say("\n".join("   " + line for line in text.splitlines()))

    async def answer_yes(self, _context: Any, params: ElicitRequestParams) -> ElicitResult:
        """Play the user: show what the server asks, and agree (yes to every yes/no field)."""
        self.say(f"   the server asks the user: {params.message}")
        self.say("   the user answers: yes")
        fields = getattr(params, "requested_schema", None) or {}
        return ElicitResult(
            action="accept", content=dict.fromkeys(fields.get("properties", {}), True)
        )

    async def list_tools(self) -> list[str]:
        self._show_call("tools/list")
        names = [tool.name for tool in (await self.client.list_tools()).tools]
        self._show("tools: " + ", ".join(names))
        return names

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self._show_call(f"tools/call {tool}", arguments)
        result: CallToolResult = await self.client.call_tool(tool, arguments)
        if result.is_error:
            message = " ".join(getattr(c, "text", "") for c in result.content)
            self._show(f"error: {message}")
            raise DemoFailed(f"{tool} failed: {message}")
        structured = result.structured_content or {}
        self._show(structured)
        return structured

    async def read(self, uri: str) -> Any:
        self._show_call(f"resources/read {uri}")
        contents = (await self.client.read_resource(uri)).contents
        texts = [c.text for c in contents if isinstance(c, TextResourceContents)]
        value = json.loads(texts[0]) if texts else None
        self._show(value)
        return value


async def run_demo(settings: Settings, out: TextIO = sys.stdout) -> int:
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="training-package-demo-") as tmp:
        settings = _with_sqlite_path(settings, Path(tmp) / "drafts.sqlite3")
        narrator = Narrator(out)
        async with Client(build_server(settings), elicitation_callback=narrator.answer_yes) as c:
            narrator.client = c
            narrator.say("training-package-mcp demo: an MCP client drives the server in-process.")
            narrator.say("Drafts live in a temporary database that is removed at the end; the")
            narrator.say("finished package stays on disk.")
            try:
                draft_id = await walk_wizard(narrator)
            except DemoFailed as exc:
                narrator.say(f"\nThe demo stopped: {exc}")
                return 1
        try:
            await launch_on_stand_in_hub(narrator, settings, draft_id)
        except DemoFailed as exc:
            narrator.say(f"\nThe demo stopped: {exc}")
            return 1
    return 0


DEMO_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
LARGER_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"  # in the offline catalog too
DEMO_DATASET = "support_chat.jsonl"  # bundled in samples/, an allowed root


async def walk_wizard(narrator: Narrator) -> str:
    """The four steps and the package; the draft's id."""
    await narrator.list_tools()
    created = await narrator.call("create_draft", {"title": "support-bot v1"})
    draft_id = created["draft_id"]
    await narrator.read("package://drafts")

    narrator.say(f"\n{RULE}\nStep 1: pick a base model small enough for a quick first run.")
    await narrator.call("search_models", {"max_params_b": 2})
    await narrator.call("select_model", {"draft_id": draft_id, "model_id": DEMO_MODEL})

    narrator.say(f"\n{RULE}\nStep 2: the LoRA template, with a gentler learning rate.")
    applied = await narrator.call(
        "apply_template",
        {"template": "lora", "overrides": {"learning_rate": 1e-4}, "draft_id": draft_id},
    )
    narrator.say("   where each value came from:")
    narrator.say(
        "\n".join(f"     {key}: {source}" for key, source in applied["provenance"].items())
    )

    narrator.say(f"\n{RULE}\nStep 3: check every record of the bundled support-chat dataset.")
    await narrator.call("validate_datasets", {"datasets": [DEMO_DATASET], "draft_id": draft_id})

    narrator.say(f"\n{RULE}\nStep 4: where to train, how long, at what cost; take the pick.")
    plan = await narrator.call("estimate_deployment", {"draft_id": draft_id, "budget_usd": 20})
    if not plan["recommended"]:
        raise DemoFailed("no hardware option fits")
    await narrator.call(
        "estimate_deployment", {"draft_id": draft_id, "select": plan["recommended"]}
    )

    narrator.say(f"\n{RULE}\nThe user changes their mind: a larger model. The config is checked")
    narrator.say("again at once; the token counts and the estimate are stale until the data is")
    narrator.say("validated with the new model's tokenizer, which re-estimates the chosen target.")
    await narrator.call("select_model", {"draft_id": draft_id, "model_id": LARGER_MODEL})
    await narrator.call("get_draft", {"draft_id": draft_id})
    await narrator.call("validate_datasets", {"datasets": [DEMO_DATASET], "draft_id": draft_id})
    state = await narrator.call("get_draft", {"draft_id": draft_id})
    if state["steps"][-1]["status"] != "valid":  # the choice no longer fits: choose again
        plan = await narrator.call("estimate_deployment", {"draft_id": draft_id})
        await narrator.call(
            "estimate_deployment", {"draft_id": draft_id, "select": plan["recommended"]}
        )

    narrator.say(f"\n{RULE}\nFinally: write the training package.")
    package = await narrator.call("finalize_package", {"draft_id": draft_id})
    if not package["written"]:
        raise DemoFailed("the package was not written")
    await narrator.read(created["uri"])
    narrator.say(f"\n{RULE}\nThe training package is in {package['path']}:")
    narrator.say("\n".join(f"   {name}" for name in package["files"]))
    narrator.say("Train it with: pip install -r requirements.txt && python train.py")
    return draft_id


async def launch_on_stand_in_hub(narrator: Narrator, settings: Settings, draft_id: str) -> None:
    """launch_training, training_status and the calibration log against the checkout's local
    stand-in for the Hugging Face Hub (tests/fake_hub.py): no account, no money, and the Job's
    stages and log lines are played by the stand-in, as the narration says. Skipped, saying
    why, where there is no stand-in (an installed wheel) or huggingface_hub is offline."""
    from huggingface_hub import constants

    narrator.say(f"\n{RULE}\nLaunching: the package as a Hugging Face Job.")
    try:
        from tests.fake_hub import serve_fake_hub
    except ImportError:
        narrator.say("   skipped: it runs against the checkout's stand-in Hub (tests/fake_hub.py).")
        return
    if constants.is_offline_mode():
        narrator.say("   skipped: HF_HUB_OFFLINE is set, and the stand-in Hub is reached by HTTP.")
        return
    with serve_fake_hub() as (hub, url):
        narrator.say(f"   against a local stand-in for the Hub at {url}: nothing is billed, and")
        narrator.say("   the Job's stages and log lines below are played by the stand-in.")
        hub.add_account(DEMO_TOKEN, "demo-user")
        _offer_flavors(hub.jobs_hardware, settings)
        hub_settings = settings.models.hub.model_copy(update={"endpoint": url})
        models = settings.models.model_copy(update={"hub": hub_settings})
        server = build_server(
            settings.model_copy(update={"models": models}), Secrets(hf_token=DEMO_TOKEN)
        )
        async with Client(server, elicitation_callback=narrator.answer_yes) as client:
            narrator.client = client
            draft = await narrator.client.read_resource(f"package://drafts/{draft_id}")
            payload = json.loads(draft.contents[0].text)["deployment"]["payload"]  # type: ignore[union-attr]
            target = (payload.get("selected") or {}).get("target")
            if target not in settings.deployment.flavors:
                narrator.say(f"   skipped: the chosen target, {target}, is no Hugging Face flavor.")
                return
            started = await narrator.call("launch_training", {"draft_id": draft_id})
            if not started["launched"]:
                raise DemoFailed(f"the launch did not start: {started['next_action']}")
            job = started["job_id"]
            run_key = hub.jobs[job].spec["environment"][RUN_KEY_ENV]
            await narrator.call("training_status", {"draft_id": draft_id})
            narrator.say("\n   (the stand-in Hub: the Job runs and train.py reports a step)")
            hub.advance_job(job, "RUNNING", logs=_played_lines(run_key), running_secs=600)
            await narrator.call("training_status", {"draft_id": draft_id})
            narrator.say("\n   (the stand-in Hub: the Job completes)")
            done = _done_line(run_key, started["model_repo"])
            hub.advance_job(job, "COMPLETED", logs=[done], running_secs=1200)
            await narrator.call("training_status", {"draft_id": draft_id})
            await narrator.read("package://calibration")


DEMO_TOKEN = "hf_demo_token_for_the_stand_in_hub"


def _done_line(run_key: str, model_repo: str) -> str:
    done = {"event": "done", "run": run_key, "model_repo": model_repo}
    return json.dumps({**done, "max_memory_allocated_gb": 6.2, "runtime_s": 1150.0, "steps": 60})


def _played_lines(run_key: str) -> list[str]:
    """What train.py prints under the launch contract, as the stand-in plays it."""
    start = {"event": "start", "run": run_key, "total_steps": 60, "model_repo": None}
    progress = {
        "event": "progress",
        "run": run_key,
        "step": 30,
        "total_steps": 60,
        "loss": 1.42,
        "learning_rate": 0.0001,
        "tokens_per_s": 2100.0,
        "epoch": 1.0,
    }
    return [json.dumps(start), "Map: 100%|##########| 60/60", json.dumps(progress)]


def _offer_flavors(listed: list[dict[str, Any]], settings: Settings) -> None:
    """The stand-in lists every configured flavor at its configured price."""
    known = {entry["name"] for entry in listed}
    for name, flavor in settings.deployment.flavors.items():
        if name not in known:
            per_minute = flavor.usd_per_hour / MINUTES_PER_HOUR
            listed.append(
                {
                    "name": name,
                    "prettyName": name,
                    "cpu": f"{flavor.vcpu} vCPU",
                    "ram": f"{flavor.ram_gb} GB",
                    "accelerator": None,
                    "unitCostMicroUSD": round(per_minute / MICRO),
                    "unitCostUSD": per_minute,
                    "unitLabel": "minute",
                }
            )


def _with_sqlite_path(settings: Settings, path: Path) -> Settings:
    server = settings.server
    sqlite = server.storage.sqlite.model_copy(update={"path": path})
    storage = server.storage.model_copy(update={"sqlite": sqlite})
    return settings.model_copy(update={"server": server.model_copy(update={"storage": storage})})
