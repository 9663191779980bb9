"""Turn ``distillation.teacher_model`` into a local checkpoint file, then into a frozen model.

Accepted references:

- a teacher run directory (holding ``model.safetensors``) or a checkpoint file;
- a W&B run path ``entity/project/run_id``: the checkpoint artifact the run recorded in its config
  (``checkpoint_artifact``), else the newest ``model`` artifact it logged, else a reference-implementation
  run's ``model_path`` file;
- a W&B artifact ``entity/project/name:alias``.

W&B downloads land in a local cache (``$BACKDOOR_DEFENSE_CACHE``, default ``~/.cache/backdoor_defense``).
Weights are read with safetensors, or with ``torch.load(weights_only=True)`` for reference checkpoints:
never unpickled blindly.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.checkpoint import CHECKPOINT_NAME
from models.classifier_factory import build_classifier, classifier_from_checkpoint, resolve_architecture
from utils.errors import UserError, describe_load_error, first_line
from utils.limits import MAX_CLASSES

ACCEPTED = (
    "a teacher run directory, a checkpoint file (.safetensors), a W&B run path entity/project/run_id, "
    "or a W&B artifact entity/project/name:alias"
)
RUN_PATH = re.compile(r"^([\w.-]+)/([\w.-]+)/([\w.-]+)$")
ARTIFACT = re.compile(r"^([\w.-]+)/([\w.-]+)/([\w.-]+):([\w.-]+)$")


@dataclass(frozen=True)
class TeacherSource:
    path: Path  # local checkpoint file
    reference: str  # what the user wrote
    artifact: str | None = None  # W&B artifact the checkpoint came from (for lineage)
    legacy: dict | None = None  # reference-implementation checkpoint: {"architecture", "num_classes"}


def cache_dir() -> Path:
    root = (
        os.environ.get("BACKDOOR_DEFENSE_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "backdoor_defense"
    )
    return Path(root) / "teachers"


def looks_like_teacher_reference(reference: str) -> bool:
    """An existing path or a W&B run path / artifact reference (checked without network)."""
    return Path(reference).expanduser().exists() or bool(RUN_PATH.match(reference) or ARTIFACT.match(reference))


def _fail(reference: str, why: str) -> UserError:
    return UserError(f"distillation.teacher_model: cannot use '{reference}': {why}; accepted: {ACCEPTED}")


def _local(reference: str) -> TeacherSource:
    path = Path(reference).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_NAME
        if not path.is_file():
            raise _fail(reference, f"the folder has no {CHECKPOINT_NAME}")
    if path.suffix != ".safetensors":
        raise _fail(reference, "local checkpoints must be .safetensors files written by train_teacher.py")
    return TeacherSource(path, reference)


def _download_artifact(artifact, reference: str) -> TeacherSource:
    folder = cache_dir() / re.sub(r"[^\w.-]+", "_", artifact.qualified_name)
    local = Path(artifact.download(root=os.fspath(folder)))
    files = sorted(local.glob("*.safetensors"))
    if not files:
        raise _fail(reference, f"artifact {artifact.qualified_name} holds no .safetensors checkpoint")
    return TeacherSource(files[0], reference, artifact=artifact.qualified_name)


def _from_run(api, reference: str) -> TeacherSource:
    run = api.run(reference)
    entity, project = run.entity, run.project
    recorded = run.config.get("checkpoint_artifact")
    if recorded:
        return _download_artifact(api.artifact(f"{entity}/{project}/{recorded}", type="model"), reference)
    models = [a for a in run.logged_artifacts() if a.type == "model"]
    if models:
        return _download_artifact(models[-1], reference)
    legacy_path = run.config.get("model_path")
    if legacy_path and "Architecture" in run.config:
        folder = cache_dir() / f"{entity}_{project}_{run.id}"
        with run.file(legacy_path).download(root=os.fspath(folder), replace=True, exist_ok=True) as handle:
            path = Path(handle.name)
        legacy = {"architecture": run.config["Architecture"], "num_classes": int(run.config["num_classes"])}
        return TeacherSource(path, reference, legacy=legacy)
    raise _fail(reference, "the run logged no model artifact and no model_path")


def resolve_teacher(reference: str, api=None) -> TeacherSource:
    """A local checkpoint for ``reference``; ``api`` is a ``wandb.Api`` (made on demand)."""
    reference = reference.strip()
    if not looks_like_teacher_reference(reference):
        raise _fail(reference, "no such file or folder, and not a W&B reference")
    if Path(reference).expanduser().exists():
        return _local(reference)
    try:
        if api is None:
            import wandb

            api = wandb.Api(timeout=60)
        if ARTIFACT.match(reference):
            return _download_artifact(api.artifact(reference, type="model"), reference)
        return _from_run(api, reference)
    except UserError:
        raise
    except Exception as err:  # network, auth and not-found errors come in many types
        raise _fail(reference, f"W&B says: {first_line(err)}") from err


def _load_reference_checkpoint(source: TeacherSource) -> tuple[nn.Module, dict]:
    """A checkpoint written by the reference implementation: {'model_state_dict': ...} of its Classifier."""
    legacy = source.legacy
    if not 2 <= legacy["num_classes"] <= MAX_CLASSES:  # read from the run's config: bound it before allocating
        raise _fail(source.reference, f"its run config says num_classes {legacy['num_classes']} (2..{MAX_CLASSES})")
    try:
        resolve_architecture(legacy["architecture"])
    except ValueError as err:
        raise _fail(source.reference, f"its run config names an unknown Architecture: {err}") from err
    try:
        payload = torch.load(source.path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise _fail(
            source.reference, f"{source.path} is not a loadable weights-only checkpoint ({describe_load_error(err)})"
        ) from err
    if not isinstance(payload, dict):
        raise _fail(source.reference, f"{source.path} holds a {type(payload).__name__}, not a state dict")
    state = payload.get("model_state_dict", payload)
    prefixes = ("model._orig_mod.", "_orig_mod.", "model.")
    cleaned = {}
    for key, value in state.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        cleaned[key] = value
    # the reference fed [0, 1] images without normalisation
    model = build_classifier(legacy["architecture"], legacy["num_classes"], mean=(0.0,) * 3, std=(1.0,) * 3)
    try:
        model.backbone.load_state_dict(cleaned)
    except RuntimeError as err:
        raise _fail(source.reference, f"its weights do not fit {legacy['architecture']}: {first_line(err)}") from err
    metadata = {"architecture": legacy["architecture"], "num_classes": legacy["num_classes"], "class_names": None}
    return model.eval(), {**metadata, "image_size": None}


def load_teacher(source: TeacherSource) -> tuple[nn.Module, dict]:
    """The teacher in eval mode with gradients off, and its checkpoint metadata."""
    if source.legacy is not None:
        model, metadata = _load_reference_checkpoint(source)
    else:
        model, metadata = classifier_from_checkpoint(source.path)
    _check_finite_weights(model, source.path)
    return model.requires_grad_(False).eval(), metadata


def _check_finite_weights(model: nn.Module, path: Path) -> None:
    """A teacher with NaN or infinite weights gives NaN outputs: say so here, not "training diverged" later."""
    bad = [
        name
        for name, tensor in model.state_dict().items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise UserError(
            f"distillation.teacher_model: {path}: the teacher's weights are not finite (NaN or infinite values "
            f"in {shown}); it cannot teach: use a teacher whose training ended normally"
        )


class ResizedInput(nn.Module):
    """Resize a batch to the size a teacher was trained at (bilinear, antialiased) before calling it."""

    def __init__(self, model: nn.Module, size: int):
        super().__init__()
        self.model = model
        self.size = size

    def forward(self, images: torch.Tensor):
        if images.shape[-1] != self.size or images.shape[-2] != self.size:
            images = nn.functional.interpolate(
                images, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )
        return self.model(images)
