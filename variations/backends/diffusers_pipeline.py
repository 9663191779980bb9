"""Loading a diffusers pipeline for a backend: hub id or local folder, checked, only the parts it uses.

The folder's ``model_index.json`` must name a pipeline the backend can load from (one line otherwise, naming
the config key). From the hub, only the components the pipeline class takes are fetched (``hub_files``);
components a backend leaves out (a safety checker, Kandinsky's prior transformer) are neither fetched nor
loaded; in fp16 the ``fp16`` weight variant is preferred where a component has one. Under torchrun each machine's
first process downloads before the others read its cache. Then: dtype, scheduler swap, SDPA attention,
per-variation generators.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from utils import distributed
from utils.errors import UserError, first_line
from variations.backends import hub_files
from variations.backends.moved_models import replacement

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
MISMATCH = "weight shapes do not match the component's config.json"
# diffusers 0.42's words for a weight whose shape differs from the model built from config.json
DIFFUSERS_MISMATCH = re.compile(r"because (\S+) expected shape torch\.Size\((.*?)\), but got torch\.Size\((.*?)\)")


@dataclass(frozen=True)
class PipelineRequest:
    """What a backend loads, from where, and what the folder must hold."""

    pipeline_class: type  # the diffusers pipeline built with from_pretrained
    model: str  # hub id or local save_pretrained folder
    key: str = "diffusion.model"  # the config key naming it, for messages
    accepts: tuple[str, ...] = ()  # other model_index.json pipelines holding every part it needs
    skip: tuple[str, ...] = ()  # components neither fetched nor loaded (passed as None)
    options: Mapping = field(default_factory=dict)  # further from_pretrained keywords
    revision: str | None = None  # hub branch, tag or commit; None: main

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.pipeline_class.__name__, *self.accepts)

    def components(self, model_index: dict) -> list[str]:
        """The model_index components this pipeline takes, less the skipped ones."""
        takes = inspect.signature(self.pipeline_class.__init__).parameters
        listed = [name for name, value in model_index.items() if isinstance(value, list) and value[0] is not None]
        return [name for name in listed if name in takes and name not in self.skip]


def without_safety_checker(pipeline_class, model: str, *unused: str, accepts: tuple[str, ...] = ()) -> PipelineRequest:
    """A Stable Diffusion pipeline without its safety checker (nor the ``unused`` parts): the checker would black
    out the images it flags, silently, in a training set."""
    return PipelineRequest(
        pipeline_class,
        model,
        accepts=accepts,
        skip=("safety_checker", *unused),
        options={"requires_safety_checker": False},
    )


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def quiet_loading_bars() -> None:
    """The libraries' per-file loading bars would drown ours; their warnings still show."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def looks_local(model: str) -> bool:
    """Whether ``model`` can only be a folder: hub ids are ``name`` or ``owner/name``, never ``./x``, ``/x`` or
    ``a/b/c``. (A one-slash name such as ``models/sd`` is both; it is tried on the hub, see ``hub_error``.)"""
    return Path(model).exists() or model.startswith((".", "/", "~")) or model.count("/") > 1


def read_model_index(request: PipelineRequest, path: Path) -> dict:
    """The folder's model index, refused (one line) if it describes a pipeline the backend cannot load from."""
    if not path.is_file():
        raise UserError(
            f"{request.key}: '{request.model}' has no model_index.json: not a diffusers pipeline folder "
            "(save_pretrained writes one)"
        )
    try:
        index = json.loads(path.read_text())
    except ValueError as err:
        raise UserError(f"{request.key}: unreadable {path} ({first_line(err)})") from err
    found = index.get("_class_name")
    if found not in request.accepted:
        raise UserError(
            f"{request.key}: '{request.model}' holds a {found}, but this backend loads a "
            f"{' or '.join(request.accepted)}; choose the diffusion.backend made for it or another checkpoint"
        )
    return index


def hub_error(request: PipelineRequest, err: Exception) -> UserError:
    model = request.model
    moved = replacement(model)
    if moved is not None:
        return UserError(
            f"{request.key}: cannot load '{model}' ({first_line(err)}): that repository has left the hub; a copy is "
            f"'{moved}': set {request.key}: {moved}"
        )
    parent = Path(model).parent
    if parent != Path() and parent.is_dir():
        # "models/sd" beside an existing "models/" folder is far more likely a mistyped local path than a hub
        # repository; it was still tried on the hub (a valid owner/name), so say both
        return UserError(
            f"{request.key}: folder not found: {model} (nor could hub repository '{model}' be loaded: "
            f"{first_line(err)})"
        )
    pinned = f" --revision {request.revision}" if request.revision else ""
    return UserError(
        f"{request.key}: cannot load '{model}' ({first_line(err)}). Without network, download it once where "
        f"there is one (`hf download {model}{pinned}`: it lands in the HuggingFace cache, $HF_HOME, default "
        "~/.cache/huggingface) and set HF_HUB_OFFLINE=1, or point it at a local folder written by save_pretrained"
    )


def model_index(request: PipelineRequest) -> dict:
    """The checked model index of the requested folder or hub repository (from the hub: that one small file).
    Backends that load several pipelines check every index with this before any weights are read."""
    model = request.model
    if looks_local(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise UserError(f"{request.key}: folder not found: {model}")
        return read_model_index(request, folder / hub_files.MODEL_INDEX)
    try:
        return read_model_index(request, hub_files.fetch_model_index(model, request.revision))
    except (OSError, ValueError) as err:
        raise hub_error(request, err) from err


def model_folder(request: PipelineRequest, index: dict, variant: str | None = None) -> Path:
    """The local folder to load from: the given one, or a hub snapshot holding the used components only (named
    after its commit). Under torchrun, each machine's first process downloads; the others then find it cached."""
    if looks_local(request.model):
        return Path(request.model).expanduser()
    with distributed.local_main_first():
        try:
            return hub_files.fetch(request.model, request.components(index), request.revision, variant)
        except (OSError, ValueError) as err:
            raise hub_error(request, err) from err


def weight_variant(dtype: torch.dtype, folder: Path, components: list[str]) -> str | None:
    """``fp16`` when running in float16 and some component has fp16 weights (the others load their plain ones)."""
    if dtype != torch.float16:
        return None  # bfloat16 from fp16 weights would lose what float32 weights keep
    has = any(next((folder / component).glob("*.fp16.*"), None) for component in components)
    return "fp16" if has else None


def unreadable_weights(folder: Path, components: list[str]) -> tuple[Path, Exception] | None:
    """The first safetensors file of ``components`` whose header safetensors refuses (a truncated or corrupt
    download), with the error: transformers' loaders raise it without the file's name. Reads headers only."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(p for component in components for p in (folder / component).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            return path, err
    return None


def load_error(request: PipelineRequest, folder: Path, index: dict, err: Exception) -> UserError:
    """What went wrong reading a checked folder's weights, in one line naming the key and the file or folder."""
    found = unreadable_weights(folder, request.components(index))
    if found is not None:
        path, cause = found
        return UserError(
            f"{request.key}: '{path}': truncated or corrupt weights file ({first_line(cause)}); delete it, then "
            "download or save it again"
        )
    reason, mismatch = first_line(err), DIFFUSERS_MISMATCH.search(str(err))
    if mismatch:  # diffusers: the first key that does not fit
        reason = f"{MISMATCH} ({mismatch[1]}: {mismatch[3]} in the file, {mismatch[2]} by the config)"
    elif isinstance(err, RuntimeError) and "mismatch" in str(err):  # transformers logs the keys just above
        reason = f"{MISMATCH} (the load report above lists them)"
    return UserError(f"{request.key}: '{request.model}': {reason}")


def load(
    request: PipelineRequest,
    device: torch.device,
    dtype: torch.dtype,
    scheduler: str | None = None,
    index: dict | None = None,
):
    """The requested pipeline on ``device`` in ``dtype``, with ``scheduler`` (a class name) swapped in if given;
    ``index``: its model index when the caller has checked it already."""
    from safetensors import SafetensorError

    quiet_loading_bars()
    index = index if index is not None else model_index(request)
    folder = model_folder(request, index, "fp16" if dtype == torch.float16 else None)
    variant = weight_variant(dtype, folder, request.components(index))
    try:
        pipe = request.pipeline_class.from_pretrained(
            str(folder), dtype=dtype, variant=variant, **dict.fromkeys(request.skip), **request.options
        )
    # What a bad checkpoint raises: diffusers wraps its own read errors in OSError/ValueError (shape mismatches
    # too), transformers lets safetensors' SafetensorError through and raises RuntimeError for shape mismatches.
    # Only from_pretrained is guarded, so a RuntimeError of our own code still shows its traceback.
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise load_error(request, folder, index, err) from err
    if scheduler is not None:
        import diffusers

        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)  # ours counts images, not denoising steps
    # the commit a hub snapshot holds (its folder's name), recorded beside the outputs; None for local folders
    pipe.hub_revision = None if looks_local(request.model) else folder.name
    return pipe.to(device)


def use_sdpa(denoiser) -> None:
    """PyTorch's fused scaled-dot-product attention in every attention layer (diffusers' torch-2 default, made
    explicit), keeping each layer's kind: Kandinsky's UNet has added-key/value attention. Models without the
    attention-processor interface (``UNet2DModel``) use ``AttnProcessor2_0`` by default."""
    from diffusers.models.attention_processor import (
        ADDED_KV_ATTENTION_PROCESSORS,
        AttnAddedKVProcessor2_0,
        AttnProcessor2_0,
    )

    if not hasattr(denoiser, "set_attn_processor"):  # UNet2DModel: its Attention layers default to SDPA already
        return
    denoiser.set_attn_processor(
        {
            name: AttnAddedKVProcessor2_0() if type(processor) in ADDED_KV_ATTENTION_PROCESSORS else AttnProcessor2_0()
            for name, processor in denoiser.attn_processors.items()
        }
    )


def generators(seeds: list[list[int]]) -> list[torch.Generator]:
    """One CPU generator per (image, variation), image by image: the order diffusers repeats embeddings in."""
    return [torch.Generator("cpu").manual_seed(seed) for per_image in seeds for seed in per_image]
