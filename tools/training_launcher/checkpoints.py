"""Whether a run left a checkpoint to resume from, looked for where `train.py --resume` looks.

A Job's disk starts empty, so a resumed Job can only go on from the model repo's
last-checkpoint/; if there is none it exits at once, after its machine was paid for and its
requirements installed. So a Hub resume is refused before anything starts, and a canceled run is
told whether resuming would go anywhere. The names below are train.py's (a script that runs
without this package); tests/test_train_script.py holds the two to the same values.
"""

from pathlib import Path

OUTPUT_DIR = "output"
"""train.py's --output-dir default, in the package folder."""
CHECKPOINT_PREFIX = "checkpoint-"
HUB_CHECKPOINT = "last-checkpoint"
TRAINER_STATE = "trainer_state.json"
"""The Trainer writes it into a checkpoint last, so a checkpoint without it is incomplete."""
HUB_CHECKPOINT_STATE = f"{HUB_CHECKPOINT}/{TRAINER_STATE}"
"""The file in the model repo that says last-checkpoint/ is complete."""


def local_checkpoint(package_folder: Path) -> bool:
    """Whether the package's output folder holds a complete checkpoint-<step>."""
    return any(
        folder.name.removeprefix(CHECKPOINT_PREFIX).isdigit() and (folder / TRAINER_STATE).is_file()
        for folder in (package_folder / OUTPUT_DIR).glob(f"{CHECKPOINT_PREFIX}*")
    )
