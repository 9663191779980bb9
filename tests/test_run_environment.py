"""The ``environment`` block of summary.json: values of the running interpreter, the git commit read from ``.git``."""

import platform
import socket
import sys

import torch

from utils.run_environment import git_commit, package_version, run_environment

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def test_environment_names_this_interpreter_its_libraries_and_the_device():
    environment = run_environment(torch.device("cpu"))
    assert environment["python"] == platform.python_version()
    assert environment["packages"]["torch"] == package_version("torch") and package_version("torch") is not None
    assert set(environment["packages"]) >= {"torch", "diffusers", "transformers", "timm"}
    assert environment["cuda_available"] == torch.cuda.is_available() and environment["cuda"] == torch.version.cuda
    assert environment["cudnn_available"] == torch.backends.cudnn.is_available()
    assert environment["device"] == "cpu" and environment["device_name"]
    assert environment["host"] == socket.gethostname()
    assert environment["command"].startswith(sys.executable) and sys.argv[0] in environment["command"]
    assert package_version("no-such-package-here") is None


def test_git_commit_from_a_branch_a_packed_ref_a_worktree_and_no_checkout(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git" / "refs" / "heads").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / ".git" / "refs" / "heads" / "main").write_text(COMMIT + "\n")
    assert git_commit(repo) == COMMIT
    (repo / ".git" / "refs" / "heads" / "main").unlink()  # after `git gc`: only in packed-refs
    (repo / ".git" / "packed-refs").write_text(f"# pack-refs with: peeled\n{OTHER} refs/heads/main\n")
    assert git_commit(repo) == OTHER
    # a linked worktree: .git is a file naming its folder, which shares the main repository's refs
    worktree_git = repo / ".git" / "worktrees" / "wt"
    worktree_git.mkdir(parents=True)
    (worktree_git / "HEAD").write_text("ref: refs/heads/main\n")
    (worktree_git / "commondir").write_text("../..\n")
    (tmp_path / "wt").mkdir()
    (tmp_path / "wt" / ".git").write_text(f"gitdir: {worktree_git}\n")
    assert git_commit(tmp_path / "wt") == OTHER
    (worktree_git / "HEAD").write_text(COMMIT + "\n")  # a detached HEAD
    assert git_commit(tmp_path / "wt") == COMMIT
    assert git_commit(tmp_path / "nowhere") is None
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/gone\n")
    assert git_commit(repo) is None
