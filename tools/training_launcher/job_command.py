"""What a Hugging Face Job runs: an image with the torch the package needs, and a script that
downloads the package from its private repo and runs the package's own train.py."""

import shlex

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from tools.errors import UserError
from tools.training_launcher.config import HubJobsConfig


def job_image(requirements: str, config: HubJobsConfig) -> str:
    """The first configured image whose torch satisfies requirements.txt's torch line."""
    spec = None
    for line in requirements.splitlines():
        try:
            requirement = Requirement(line.strip())
        except InvalidRequirement:
            continue
        if requirement.name.lower() == "torch":
            spec = requirement.specifier
    for candidate in config.images:
        if spec is None or spec.contains(Version(candidate.torch), prereleases=True):
            return candidate.image
    offered = ", ".join(f"torch {i.torch}" for i in config.images)
    raise UserError(
        f"No configured Job image holds a torch that satisfies the package's '{spec}' "
        f"(images offer {offered}). Add one to hub.images in configs/launch.yaml."
    )


def train_arguments(push_to: str | None, resume: bool, max_hours: float) -> list[str]:
    """train.py's arguments under the launch contract: train.py stops itself at the run's time
    limit, saving a checkpoint first."""
    arguments = ["--push-to", push_to] if push_to else []
    arguments += ["--resume"] if resume else []
    return [*arguments, "--max-hours", str(max_hours)]


def train_command(
    python: str, train_script: str, gpu_count: int, arguments: list[str]
) -> list[str]:
    """One process per GPU on a multi-GPU machine (the package README's accelerate launch),
    else train.py itself."""
    if gpu_count > 1:
        launch = [python, "-m", "accelerate.commands.launch", "--num_processes", str(gpu_count)]
        return [*launch, train_script, *arguments]
    return [python, train_script, *arguments]


def job_command(
    package_repo: str,
    train_script: str,
    requirements_file: str,
    gpu_count: int,
    arguments: list[str],
    config: HubJobsConfig,
) -> list[str]:
    """The Job's command: fetch the package (HF_TOKEN comes as a secret), install its
    requirements over the image's torch, run train.py."""
    workdir = shlex.quote(config.workdir)
    train = shlex.join(train_command("python", train_script, gpu_count, arguments))
    script = " && ".join(
        [
            "set -e",
            f"pip install --quiet --no-cache-dir {shlex.quote(config.hub_client)}",
            f"hf download {shlex.quote(package_repo)} --repo-type "
            f"{config.package_repo_type} --local-dir {workdir}",
            f"cd {workdir}",
            f"pip install --quiet --no-cache-dir -r {shlex.quote(requirements_file)}",
            f"exec {train}",
        ]
    )
    return ["bash", "-c", script]
