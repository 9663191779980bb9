"""Checkpoints: safetensors weights with the metadata needed to rebuild the model in the file's header.

Nothing is unpickled: safetensors holds only tensors, and the metadata is JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from utils.atomic_io import atomic_path
from utils.errors import UserError

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
    header = {"format": "pt", METADATA_KEY: json.dumps({"format_version": FORMAT_VERSION, **metadata})}
    with atomic_path(path) as tmp:
        save_file(state, os.fspath(tmp), metadata=header)
    return Path(path)


def read_metadata(path: str | os.PathLike) -> dict:
    try:
        with safe_open(os.fspath(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise UserError(f"{path}: not a readable safetensors checkpoint ({err})") from err
    if METADATA_KEY not in header:
        raise UserError(f"{path}: a safetensors file without this project's metadata (architecture, classes)")
    return json.loads(header[METADATA_KEY])


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, metadata)."""
    metadata = read_metadata(path)
    return load_file(os.fspath(path)), metadata
