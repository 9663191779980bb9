"""What a run ran on: interpreter, library versions, CUDA, device, code version, host and command line.

Recorded in every ``summary.json`` (``environment``) so that a number can be traced to the software and hardware
that produced it. Nothing here starts a subprocess: the git commit is read from the ``.git`` folder directly.
"""

from __future__ import annotations

import platform
import shlex
import socket
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "torchvision", "diffusers", "transformers", "timm", "numpy", "wandb")
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout holding this code


def package_version(name: str) -> str | None:
    """The installed version of a distribution, without importing it; ``None`` if it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_dir(root: Path) -> Path | None:
    """The git folder of a checkout: ``.git`` itself, or the folder a worktree's ``.git`` file points to."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        text = dot_git.read_text().strip()
        if text.startswith("gitdir:"):
            target = Path(text.removeprefix("gitdir:").strip())
            return target if target.is_absolute() else (root / target).resolve()
    return None


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    """A ref's commit from its loose file or ``packed-refs``, in the worktree's folder or the shared one."""
    folders = [git_dir]
    common = git_dir / "commondir"
    if common.is_file():  # a linked worktree keeps its branches in the main repository's folder
        shared = Path(common.read_text().strip())
        folders.append(shared if shared.is_absolute() else (git_dir / shared).resolve())
    for folder in folders:
        loose = folder / ref
        if loose.is_file():
            return loose.read_text().strip()
        packed = folder / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                commit, _, name = line.partition(" ")
                if name == ref:
                    return commit
    return None


def git_commit(root: Path = PROJECT_ROOT) -> str | None:
    """The commit checked out in ``root`` (read from ``.git``, no subprocess); ``None`` outside a git checkout."""
    try:
        git_dir = _git_dir(root)
        if git_dir is None:
            return None
        head = (git_dir / "HEAD").read_text().strip()
        commit = _resolve_ref(git_dir, head.removeprefix("ref:").strip()) if head.startswith("ref:") else head
    except (OSError, UnicodeDecodeError):
        return None
    return commit if commit and len(commit) in (40, 64) and all(c in "0123456789abcdef" for c in commit) else None


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model (``/proc/cpuinfo``) or architecture."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_environment(device: torch.device) -> dict:
    """The ``environment`` block of ``summary.json`` for a run on ``device``."""
    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "cuda_available": cuda,
        "cuda": torch.version.cuda,  # the CUDA version torch was built with (None: a CPU build)
        "cudnn_available": torch.backends.cudnn.is_available(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "device_name": device_name(device),
        "device_count": torch.cuda.device_count() if cuda else 0,
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "command": shlex.join([sys.executable, *sys.argv]),
    }
