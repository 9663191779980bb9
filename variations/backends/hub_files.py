"""Fetch from the HuggingFace hub only the files a pipeline loads.

diffusers' ``from_pretrained(<hub id>)`` (0.42: ``DiffusionPipeline.download``) fetches every component folder the
repository's ``model_index.json`` lists, less those passed in as arguments; a part the requested pipeline class
does not take cannot be passed, so Versatile Diffusion's text UNet, text encoder and tokenizer come along with
the image-variation parts. Here the folders are the components the backend loads (the pipeline class's
arguments, less the ones it skips: safety checkers, Kandinsky's prior transformer and text encoder), and each
folder contributes its configuration files plus one weight format: in an fp16 run the ``fp16`` variant where the
folder has one (half the download), else plain safetensors (no ``ema`` variants, no ``.bin`` twin), else plain
PyTorch ``.bin``. Root-level single-file checkpoints are never fetched. A ``revision`` (branch, tag or commit) pins
what is fetched; the snapshot folder's name is the commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

MODEL_INDEX = "model_index.json"
# weight files in any format (and their shard indexes); everything else in a component folder is configuration
WEIGHTS = re.compile(r"\.(safetensors|bin|ckpt|pt|pth|msgpack|h5|onnx|onnx_data|pb|gguf)($|\.)")
FORMATS = ("safetensors", "bin")  # the formats loaded, in order of preference


def weight_patterns(variant: str | None) -> list[re.Pattern]:
    """Weight file names in order of preference: per format, the ``variant`` (if any), then plain weights (a name
    with no dot before the extension is not a variant). Shard indexes included."""
    patterns = []
    for fmt in FORMATS:
        if variant:
            patterns.append(re.compile(rf"^[^.]+(\.{variant}\.{fmt}|\.{fmt}\.index\.{variant}\.json)$"))
        patterns.append(re.compile(rf"^[^.]+\.{fmt}(\.index\.json)?$"))
    return patterns


def needed_files(files: Iterable[str], components: Iterable[str], variant: str | None = None) -> list[str]:
    """The repository files (of ``files``) that loading ``components`` reads (``variant`` weights preferred)."""
    files = sorted(files)
    chosen = [MODEL_INDEX] if MODEL_INDEX in files else []
    for component in sorted(set(components)):
        inside = [f for f in files if f.startswith(f"{component}/")]
        chosen += [f for f in inside if not WEIGHTS.search(Path(f).name)]
        for plain in weight_patterns(variant):
            weights = [f for f in inside if plain.match(Path(f).name)]
            if weights:
                chosen += weights
                break
    return sorted(chosen)


def repository_files(repo: str, revision: str | None = None) -> list[str] | None:
    """The file listing of hub repo ``repo``; offline, the listing a previous download cached (None if none was)."""
    from huggingface_hub import HfApi, get_cached_repo_tree, is_offline_mode
    from huggingface_hub.errors import CachedRepoTreeNotFoundError

    if not is_offline_mode():
        return HfApi().list_repo_files(repo, revision=revision)
    try:
        return [entry.path for entry in get_cached_repo_tree(repo, revision=revision)]
    except CachedRepoTreeNotFoundError:
        return None  # cached by a client that kept no listing: the cached snapshot is used as it is


def fetch(repo: str, components: Iterable[str], revision: str | None = None, variant: str | None = None) -> Path:
    """Download (or find in the cache) the files of ``components`` of hub repo ``repo``; the snapshot folder (its
    name is the commit)."""
    from huggingface_hub import snapshot_download

    files = repository_files(repo, revision)
    patterns = needed_files(files, components, variant) if files is not None else None
    return Path(snapshot_download(repo, revision=revision, allow_patterns=patterns))


def fetch_model_index(repo: str, revision: str | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, MODEL_INDEX, revision=revision))
