"""Checkpoints: safetensors weights with the metadata needed to rebuild the model in the file's header.

Nothing is unpickled: safetensors holds only tensors, and the metadata is JSON, validated (keys, types,
bounded sizes) before a model is built from it, since a checkpoint may come from anyone.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from utils.atomic_io import atomic_path
from utils.errors import UserError
from utils.limits import MAX_CLASSES, MAX_IMAGE_SIZE

CHECKPOINT_NAME = "model.safetensors"
METADATA_KEY = "backdoor_defense"  # header entry holding our JSON metadata
FORMAT_VERSION = 1


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | os.PathLike, model: nn.Module, metadata: dict) -> Path:
    """Write weights + ``metadata`` atomically; returns the path."""
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap_model(model).state_dict().items()}
    header = {"format": "pt", METADATA_KEY: json.dumps({"format_version": FORMAT_VERSION, **metadata}, allow_nan=False)}
    with atomic_path(path) as tmp:
        save_file(state, os.fspath(tmp), metadata=header)
        _sort_header_metadata(tmp)
    return Path(path)


def _sort_header_metadata(path: Path) -> None:
    """Rewrite the header's metadata in key order, so identical runs write identical bytes.

    safetensors keeps the metadata in a hash map, whose order changes from one process to the next. The
    header is ``<length: u64 little-endian><JSON padded with spaces>``; the tensors' offsets count from its
    end, so a header of the same length is rewritten in place (what sorting the same keys gives).
    """
    with open(path, "r+b") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > length:  # not what safetensors writes; leave that file as it is
            return
        handle.seek(8)
        handle.write(text.ljust(length))


class CheckpointMetadata(BaseModel):
    """The header entry :func:`save_checkpoint` writes (see ``classifier_metadata``); other keys are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    architecture: str
    library: Literal["cifar", "torchvision", "timm"]
    model_name: str
    num_classes: int = Field(ge=2, le=MAX_CLASSES)
    class_names: list[str] | None = None
    image_size: int | None = Field(None, ge=1, le=MAX_IMAGE_SIZE)  # None: trained at an unknown size
    mean: tuple[float, float, float]
    std: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
    pretrained: bool = False

    @model_validator(mode="after")
    def _one_name_per_class(self):
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class_names for num_classes {self.num_classes}")
        return self


def _describe(err: ValidationError) -> str:
    missing = [".".join(map(str, e["loc"])) for e in err.errors() if e["type"] == "missing"]
    if missing:
        return f"its metadata lacks {', '.join(missing)}"
    first = err.errors()[0]
    where = ".".join(map(str, first["loc"]))
    return f"its metadata has {where + ' ' if where else ''}{repr(first.get('input'))[:60]}: {first['msg']}"


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's metadata, checked; a forged or damaged header is a one-line error naming the file."""
    try:
        with safe_open(os.fspath(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise UserError(f"{path}: not a readable safetensors checkpoint ({err})") from err
    if METADATA_KEY not in header:
        raise UserError(f"{path}: a safetensors file without this project's metadata (architecture, classes)")
    try:
        metadata = CheckpointMetadata.model_validate(json.loads(header[METADATA_KEY]))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not a usable checkpoint: its metadata is not JSON ({err})") from err
    except ValidationError as err:
        raise UserError(f"{path}: not a usable checkpoint: {_describe(err)}") from err
    return metadata.model_dump()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, metadata)."""
    metadata = read_metadata(path)
    return load_file(os.fspath(path)), metadata
