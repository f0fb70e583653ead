"""The Hub side of a launch, through huggingface_hub: whose token it is and whether it may write,
the package's private repo, and the Job itself (start, inspect, logs, cancel).

Every Hub answer a user can meet becomes a UserError that says what the account needs: an
invalid token (401), a read-only token, no Jobs for this account (402: PRO or a payment
method) or no permission to start them (403). Calls are blocking: run them in a worker thread.
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.deployment_estimator.live_prices import MINUTES_PER_HOUR
from tools.errors import UserError
from tools.hub_http import HubUnavailable
from tools.quoting import excerpt
from tools.training_launcher.checkpoints import HUB_CHECKPOINT_STATE
from tools.training_launcher.config import LaunchConfig

if TYPE_CHECKING:
    from huggingface_hub import JobInfo

TOKENS_PAGE = "https://huggingface.co/settings/tokens"
BILLING_PAGE = "https://huggingface.co/settings/billing"
REPO_WRITE = "repo.write"


@dataclass(frozen=True)
class Account:
    name: str
    can_write: bool


@dataclass(frozen=True)
class JobState:
    """What inspect_job says of a Job, in plain values."""

    stage: str
    message: str | None
    running_s: float


@contextmanager
def hub_errors(doing: str, max_chars: int) -> Iterator[None]:
    """Turn the Hub's refusals while `doing` into UserErrors saying what the account needs; the
    Hub's own words (which may quote what was sent) cut to `max_chars`."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    try:
        yield
    except HFValidationError as exc:  # a repo id the Hub would refuse, caught before sending
        said = excerpt(str(exc), max_chars)
        raise UserError(f"While {doing}: {said}. Nothing more was started.") from exc
    except HubUnavailable as exc:
        raise UserError(
            f"The Hugging Face Hub did not answer while {doing} ({exc}); nothing more was "
            "started. Try again in a moment."
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        said = excerpt(exc.server_message or str(exc), max_chars)
        raise UserError(_refusal(status, doing, said)) from exc


def _refusal(status: int | None, doing: str, said: str) -> str:
    if status == 401:
        return (
            f"The Hub refused the token while {doing} (401: invalid or expired). Make a token "
            f"with write access at {TOKENS_PAGE} and set HF_TOKEN (or run `hf auth login`)."
        )
    if status == 402:
        return (
            f"The Hub answered 402 while {doing}: this account cannot pay for Jobs. Jobs need a "
            f"PRO account or an organization with a payment method ({BILLING_PAGE}); nothing "
            "was started."
        )
    if status == 403:
        return (
            f"The Hub answered 403 while {doing}: the token may not do this. Use a token with "
            f"write access (a fine-grained one needs write on your repos and permission to "
            f"start Jobs; {TOKENS_PAGE}); nothing was started."
        )
    return f"The Hub answered {status} while {doing}: {said}. Nothing more was started."


class HubJobs:
    """huggingface_hub's HfApi for one token, as a launch uses it."""

    def __init__(self, endpoint: str | None, token: str, config: LaunchConfig) -> None:
        from huggingface_hub import HfApi  # on first use: hf_api is slow to import

        self._api = HfApi(endpoint=endpoint, token=token)
        self._token = token
        self._config = config.hub
        self._max_chars = config.status.max_log_line_chars

    def _errors(self, doing: str) -> AbstractContextManager[None]:
        return hub_errors(doing, self._max_chars)

    def account(self) -> Account:
        """The token's owner, and whether the token may write to their repos."""
        with self._errors("checking the token"):
            info = self._api.whoami()
        access = (info.get("auth") or {}).get("accessToken") or {}
        role = access.get("role")
        can_write = role == "write"
        if role == "fineGrained":
            scoped = (access.get("fineGrained") or {}).get("scoped") or []
            can_write = any(
                (scope.get("entity") or {}).get("name") == info["name"]
                and REPO_WRITE in (scope.get("permissions") or [])
                for scope in scoped
            )
        return Account(name=info["name"], can_write=can_write)

    def flavor_price(self, flavor: str) -> float | None:
        """The flavor's hourly price as the Hub lists it now; None when it is not offered."""
        with self._errors("listing the Jobs hardware"):
            listed = self._api.list_jobs_hardware()
        for hardware in listed:
            if hardware.name == flavor and hardware.unit_label == "minute":
                return hardware.unit_cost_usd * MINUTES_PER_HOUR
        return None

    def upload_package(self, folder: Path, repo_id: str) -> str:
        """The package folder in a private repo of the token's owner (made if missing); never
        in a public one: the package holds the user's data, and create_repo(exist_ok=True)
        keeps a repo of that name that was made public earlier."""
        repo_type = self._config.package_repo_type
        with self._errors(f"uploading the package to {repo_id}"):
            self._api.create_repo(repo_id, repo_type=repo_type, private=True, exist_ok=True)
            if not self._api.repo_info(repo_id, repo_type=repo_type).private:
                raise UserError(
                    f"The {repo_type} repo {repo_id}, where the package goes, exists and is "
                    "public: the package (your data with it) was not uploaded and nothing was "
                    "started. Make that repo private on the Hub, or delete it, and launch again."
                )
            self._api.upload_folder(
                repo_id=repo_id,
                repo_type=repo_type,
                folder_path=folder,
                commit_message="Training package from training-package-mcp",
                ignore_patterns=["logs/**", "output/**", ".venv/**"],
            )
        return repo_id

    def has_checkpoint(self, model_repo: str) -> bool:
        """Whether `model_repo` holds a complete last-checkpoint/ (False when there is no repo)."""
        with self._errors(f"looking for a checkpoint in {model_repo}"):
            return self._api.file_exists(model_repo, HUB_CHECKPOINT_STATE)

    def run(self, **job: Any) -> "JobInfo":
        """Start a Job (run_job's arguments); HF_TOKEN goes only as a secret."""
        with self._errors("starting the Job"):
            return self._api.run_job(secrets={"HF_TOKEN": self._token}, **job)

    def state(self, namespace: str, job_id: str) -> JobState:
        with self._errors("reading the Job"):
            info = self._api.inspect_job(job_id=job_id, namespace=namespace)
        durations = info.durations
        running = (durations.running_secs if durations else None) or 0
        return JobState(
            stage=str(getattr(info.status.stage, "value", info.status.stage)),
            message=info.status.message,
            running_s=float(running),
        )

    def logs(self, namespace: str, job_id: str) -> list[str]:
        with self._errors("reading the Job's log"):
            return list(
                self._api.fetch_job_logs(
                    job_id=job_id, namespace=namespace, tail=self._config.log_lines_fetched
                )
            )

    def cancel(self, namespace: str, job_id: str) -> None:
        with self._errors("canceling the Job"):
            self._api.cancel_job(job_id=job_id, namespace=namespace)
