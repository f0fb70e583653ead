"""train.py on this machine: started detached (its own session and process group, its output in
the package's log), found again after a server restart from the pid and the process's start
time (so a pid the system gave to another process is not mistaken for the run), and stopped
with its whole process group (accelerate's workers included)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import NamedTuple

from tools.errors import UserError

# The children this process started, so that their exit is collected (no zombies) while the
# server runs; after a restart the run is found from the draft's pid and start time instead.
_children: dict[int, subprocess.Popen[bytes]] = {}
# huggingface_hub's variables that hold or fetch a login (huggingface_hub/utils/_auth.py, 2.4)
_HUB_LOGIN_VARIABLES = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_OIDC_RESOURCE",
    "HF_OIDC_ID_TOKEN",
)
# Where huggingface_hub reads the stored login (constants.py): os.devnull reads as no token,
# and a login saved there is lost (a missing file in a folder would be made by `hf auth login`).
_HUB_TOKEN_PATH_VARIABLE = "HF_TOKEN_PATH"
_STOP_POLL_S = 0.1
_HAS_PROC = sys.platform.startswith("linux") and Path("/proc/self/stat").is_file()
_DEAD = {"Z", "X"}  # proc(5) states of a process that has ended


class Started(NamedTuple):
    pid: int
    identity: str
    """The process's start time ("" when it ended at once: its log says why)."""
    log_offset: int
    """Where its output starts in the log: earlier runs' lines are not its own."""


def run_environment(
    env: Mapping[str, str], withheld: Collection[str], hub_login: bool
) -> dict[str, str]:
    """`env` less the variables `withheld` (the server's secrets); without `hub_login`, less any
    Hugging Face login too (no token variable, no stored login), so nothing is pushed with it."""
    clean = {k: v for k, v in env.items() if k not in withheld}
    if not hub_login:
        clean = {k: v for k, v in clean.items() if k not in _HUB_LOGIN_VARIABLES}
        clean[_HUB_TOKEN_PATH_VARIABLE] = os.devnull
    return clean


def start(command: list[str], cwd: Path, log_path: Path, env: Mapping[str, str]) -> Started:
    """Start `command` detached in `cwd` with exactly `env` (see run_environment), stdout and
    stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    clean = {**env, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        offset = log.seek(0, os.SEEK_END)
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=clean,
                start_new_session=True,  # its own session and process group
                close_fds=True,
            )
        except OSError as exc:
            raise UserError(f"Could not start {command[0]}: {exc.strerror}.") from exc
    _children[process.pid] = process
    return Started(process.pid, process_start(process.pid) or "", offset)


def process_start(pid: int) -> str | None:
    """When process `pid` started, as the kernel says (clock ticks since boot on Linux, `ps`'s
    start time elsewhere); None when there is no such live process."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return None
    if _HAS_PROC:
        fields = _stat(Path(f"/proc/{pid}/stat"))
        return None if fields is None or fields[0] in _DEAD else fields[19]
    result = subprocess.run(
        ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def is_running(pid: int, identity: str) -> bool:
    """Whether the run's process is alive: the same pid with the same start time."""
    return bool(identity) and process_start(pid) == identity


def stop(pid: int, identity: str, grace_s: float) -> bool:
    """SIGTERM to the run's process group, SIGKILL to whatever of it is left after `grace_s`;
    returns once the whole group is gone (a worker that outlives the leader included, the
    leader reaped when this process started it); False if it was not running."""
    if not is_running(pid, identity):
        return False
    _signal_group(pid, signal.SIGTERM)
    if not _group_ends(pid, grace_s):
        _signal_group(pid, signal.SIGKILL)
        _group_ends(pid, grace_s)
    return True


def _group_ends(pgid: int, within_s: float) -> bool:
    """Wait up to `within_s` for process group `pgid` to have no process left."""
    deadline = time.monotonic() + within_s
    while True:
        child = _children.get(pgid)
        if child is not None and child.poll() is not None:  # reaped: no zombie in the group
            del _children[pgid]
        if not _group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_STOP_POLL_S)


def _group_alive(pgid: int) -> bool:
    """Whether a live process is left in group `pgid` (a zombie is dead, waiting for its
    parent, which after the leader's end is init)."""
    if _HAS_PROC:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            fields = _stat(stat)
            if fields is not None and fields[2] == str(pgid) and fields[0] not in _DEAD:
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of the group that this user may not signal
        return True
    return True


def _stat(path: Path) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name: state, ppid, pgrp, ... (proc(5));
    None when the process is gone."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the run leads its own group: start_new_session
    except ProcessLookupError:
        return


def read_tail(log_path: Path, max_bytes: int, start: int = 0) -> list[str]:
    """The log's last `max_bytes` after byte `start` as lines (the first, likely cut, dropped
    when cut)."""
    try:
        with log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            begin = max(start, size - max_bytes)
            log.seek(begin)
            data = log.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[1:] if begin > start else lines
