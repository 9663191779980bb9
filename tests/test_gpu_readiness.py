"""What only a GPU run with the released checkpoints would show, simulated on tiny pipelines on the CPU.

Decode memory (rows per VAE/MoVQ call), fp16 overflow (NaN outputs), SD at a size it can draw, hub repositories
that moved, revision pins, the fp16 weight variant, float32 denormalisation, the software stack recorded beside
the outputs, downloads under torchrun, compile time in images/s, and fp16/bf16 runs of every backend.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import variations.run
from tests.conftest import make_image_folder, run_script, variation_config_dict, write_config
from tests.test_variations import generate, png_bytes
from variations.backends import SourceBatch, build_backend, diffusion_section

LATENT_BACKENDS = ["versatile_diffusion", "sd_image_variations", "sd_img2img", "stable_unclip", "kandinsky22"]
DIFFUSION_BACKENDS = [*LATENT_BACKENDS, "ddpm_sdedit"]
CUDA = torch.device("cuda")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(random_models) -> dict[str, dict[str, str]]:
    return random_models


def sources(count: int, side: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(count)]


def batch_of(count: int, variations: int, side: int = 16) -> SourceBatch:
    seeds = [[10 * i + k for k in range(variations)] for i in range(count)]
    return SourceBatch(sources(count, side), seeds, ["cat"] * count)


# --- 1. memory at the default batch -------------------------------------------------------------------------------


def test_cuda_model_batches_count_rows_and_decodes_are_sliced_by_output_size():
    """The issue's cases: at 768² with 4 (unCLIP) or 2 (Kandinsky) variations, 16 images per call would decode 64 or
    32 rows at once (~70 / ~52 GiB); the default now keeps a call at 16 rows of 512² and a decode at 8."""
    from variations.backends.base import default_decode_rows, default_model_batch_size

    unclip = diffusion_section(backend="stable_unclip", num_variations=4)  # 768² by default
    kandinsky = diffusion_section(backend="kandinsky22", num_variations=2)  # 768² by default
    versatile = diffusion_section(backend="versatile_diffusion")  # 512², one variation
    assert default_model_batch_size(unclip, CUDA, 16) == 1  # 4 rows of 768²
    assert default_model_batch_size(kandinsky, CUDA, 16) == 3  # 6 rows
    assert default_model_batch_size(versatile, CUDA, 16) == 16  # as before: dataset.batch_size
    assert default_model_batch_size(versatile, CUDA, 4) == 4  # never more than a loaded batch
    assert default_model_batch_size(unclip, torch.device("cpu"), 16) == 1  # CPU: one image, as before
    assert default_model_batch_size(unclip.model_copy(update={"model_batch_size": 5}), CUDA, 16) == 5  # as set
    assert default_decode_rows(unclip, 768 * 768) == 3 and default_decode_rows(versatile, 512 * 512) == 8
    assert default_decode_rows(diffusion_section(backend="sd_img2img", decode_batch_size=2), 512 * 512) == 2


@pytest.mark.parametrize("backend", LATENT_BACKENDS)
def test_no_decode_call_gets_more_rows_than_set(models, backend, monkeypatch):
    from diffusers import AutoencoderKL, VQModel

    rows = []
    for cls in (AutoencoderKL, VQModel):
        original = cls.decode

        def counting(self, latents, *args, _original=original, **kwargs):
            rows.append(latents.shape[0])
            return _original(self, latents, *args, **kwargs)

        monkeypatch.setattr(cls, "decode", counting)
    settings = diffusion_section(
        backend=backend,
        **models[backend],
        num_variations=3,
        model_batch_size=2,
        decode_batch_size=2,
        inference_steps=2,
        height=32,
        width=32,
    )
    loaded = build_backend(settings, torch.device("cpu"), 2)
    out = loaded.generate(batch_of(2, 3))
    assert out.shape == (2, 3, 3, 32, 32) and out.dtype == torch.float32
    assert rows == [2, 2, 2]  # 6 rows (2 images × 3 variations) in three calls
    assert loaded.numerics["decode_batch_size"] == 2  # slicing may change the rounding: a resume must match it


# --- 2. NaN never written as black ---------------------------------------------------------------------------------


def test_non_finite_outputs_are_refused_named_and_retried_on_resume(tmp_path, capsys, tiny_vd_model, monkeypatch):
    data = make_image_folder(tmp_path / "src", classes=("cat", "dog"), per_class=2, size=16)
    config = variation_config_dict(data, tmp_path / "out", tiny_vd_model)
    del config["backdoor"]
    config["diffusion"]["num_variations"] = 2
    build = variations.run.build_backend
    broken = {"dog/0001.png"}

    def overflowing(*args):
        backend = build(*args)
        generate_batch = backend.generate

        def with_nan(batch):
            out = generate_batch(batch)
            for row, image in enumerate(batch.images):
                if any(np.array_equal(image, np.array(load_png(data / name))) for name in broken):
                    out[row, 1, 0, 3, 5] = float("nan")  # one pixel of one variation, as fp16 overflow leaves it
            return out

        backend.generate = with_nan
        return backend

    monkeypatch.setattr(variations.run, "build_backend", overflowing)
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "diffusion: the model returned NaN or infinite values for 1 source image(s)" in err
    assert str(data / "dog" / "0001.png") in err and "nothing was written for them" in err
    assert "Re-running the same command retries only them" in err and "diffusion.dtype: bfloat16" in err
    assert "Traceback" not in err
    written = png_bytes(tmp_path / "out")
    assert sorted(written) == [f"{c}/{i:04d}_v{k}.png" for c, i in (("cat", 0), ("cat", 1), ("dog", 0)) for k in (0, 1)]
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text()
    assert "dog/0001" not in manifest

    broken.clear()  # a transient failure: the same command redoes only the missing image
    assert generate(tmp_path, config) == 0
    again = png_bytes(tmp_path / "out")
    assert len(again) == 8 and {name: again[name] for name in written} == written


def load_png(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB").copy()


# --- 3. sd_img2img at a size Stable Diffusion can draw -------------------------------------------------------------


def test_img2img_renders_at_the_native_size_and_writes_the_sources_size(tmp_path, models, monkeypatch, caplog):
    """The tiny UNet's sample_size 8 × VAE scale 2: native 16 px. 32-px sources (CIFAR-10's size) are rendered at
    16 px and written at 32; before, SD rendered them at their own 32 px."""
    calls = []
    settings = diffusion_section(backend="sd_img2img", **models["sd_img2img"], inference_steps=2, num_variations=2)
    with caplog.at_level(logging.WARNING):
        backend = build_backend(settings, torch.device("cpu"), 1)
    assert "renders at 16×16 (native), below 256 px" in caplog.text
    pipe = backend.pipe

    def spy(**kwargs):
        calls.append(kwargs)
        return pipe(**kwargs)

    backend.pipe = type("Spy", (), {"__call__": staticmethod(spy), "__getattr__": lambda _, n: getattr(pipe, n)})()
    out = backend.generate(batch_of(1, 2, side=32))
    assert {image.size for image in calls[0]["image"]} == {(16, 16)}
    assert out.shape == (1, 2, 3, 32, 32)

    caplog.clear()
    sized = diffusion_section(backend="sd_img2img", **models["sd_img2img"], height=24, width=40)
    with caplog.at_level(logging.WARNING):
        build_backend(sized, torch.device("cpu"), 1)
    assert "renders at 24×40, below 256 px" in caplog.text and "unset to render at its native 16 px" in caplog.text


# --- 4. checkpoints that left the hub, revision pins ---------------------------------------------------------------


def test_defaults_name_repositories_that_exist_and_moved_ids_name_their_copy(tmp_path, capsys, monkeypatch):
    from variations.backends.moved_models import MOVED

    defaults = {
        name: diffusion_section(backend=name).model
        for name in ("versatile_diffusion", "sd_image_variations", "sd_img2img", "stable_unclip")
    }
    assert defaults["stable_unclip"] == "sd2-community/stable-diffusion-2-1-unclip"
    assert not set(defaults.values()) & set(MOVED)
    assert diffusion_section(backend="kandinsky22").prior_model not in MOVED

    from huggingface_hub import constants

    # offline with an empty cache (the library reads its environment once, at import)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    data = make_image_folder(tmp_path / "src", classes=("cat", "dog"), per_class=1, size=16)
    config = variation_config_dict(data, tmp_path / "out", "stabilityai/stable-diffusion-2-1-unclip")
    config["diffusion"]["backend"] = "stable_unclip"
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "diffusion.model: cannot load 'stabilityai/stable-diffusion-2-1-unclip'" in err
    assert "set diffusion.model: sd2-community/stable-diffusion-2-1-unclip" in err
    config["diffusion"].update(model="sd2-community/stable-diffusion-2-1-unclip", revision="v1.0")
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "`hf download sd2-community/stable-diffusion-2-1-unclip --revision v1.0`" in err


def hub_cache(folder: Path, cache: Path, repo: str, refs: dict[str, str]) -> None:
    """A HuggingFace cache entry for ``repo`` with a full snapshot of ``folder`` under each commit of ``refs``."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    storage = cache / f"models--{repo.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    entries = {f: TreeCacheEntry(size=(folder / f).stat().st_size, blob_id=f"{i:040x}") for i, f in enumerate(files)}
    for ref, commit in refs.items():
        (storage / "refs" / ref).write_text(commit)
        write_tree_cache(str(storage), commit, entries)
        for name in files:
            target = storage / "snapshots" / commit / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((folder / name).read_bytes())


def test_a_revision_pin_loads_that_commit_and_generation_json_records_it(tmp_path, tiny_vd_model):
    repo, cache = "shi-labs/versatile-diffusion", tmp_path / "hf_cache"
    main, pinned = "1" * 40, "2" * 40
    hub_cache(Path(tiny_vd_model), cache, repo, {"main": main, "v1": pinned})
    data = make_image_folder(tmp_path / "src", classes=("cat",), per_class=1, size=16)
    config = variation_config_dict(data, tmp_path / "out", repo)
    del config["backdoor"]
    config["diffusion"].update(inference_steps=1, revision="v1")
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_CACHE": str(cache)}
    env = offline | {"OMP_NUM_THREADS": "1"}
    result = run_script(
        tmp_path, "generate_variations.py", "-c", str(write_config(tmp_path / "a.yaml", config)), env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "generation.json").read_text())["revision"] == pinned
    del config["diffusion"]["revision"]  # main is another commit: a resume from it is refused
    result = run_script(
        tmp_path, "generate_variations.py", "-c", str(write_config(tmp_path / "b.yaml", config)), env=env
    )
    assert result.returncode == 2
    assert f"revision: '{pinned}' → '{main}'" in result.stderr


# --- 5. fp16 variant, float32 denormalisation, the stack, torchrun downloads, compile time, fp16/bf16 ------------


def test_fp16_runs_fetch_the_fp16_variant_where_a_component_has_one():
    from variations.backends.hub_files import needed_files

    listing = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.bin",
        "image_encoder/config.json",
        "image_encoder/model.safetensors",  # no fp16 variant: the plain weights
    ]
    components = ["unet", "vae", "image_encoder"]
    assert needed_files(listing, components, variant="fp16") == [
        "image_encoder/config.json",
        "image_encoder/model.safetensors",
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.bin",
    ]
    assert "unet/diffusion_pytorch_model.safetensors" in needed_files(listing, components)  # fp32/bf16: plain


def test_fp16_loads_take_the_variant_files_and_others_the_plain_ones(tmp_path, models):
    import shutil

    from variations.backends.diffusers_pipeline import weight_variant

    folder = tmp_path / "model"
    shutil.copytree(models["sd_image_variations"]["model"], folder)
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.rename(folder / "unet" / "diffusion_pytorch_model.fp16.safetensors")  # the only unet weights: fp16
    components = ["unet", "vae", "image_encoder"]
    assert weight_variant(torch.float16, folder, components) == "fp16"
    assert weight_variant(torch.bfloat16, folder, components) is None
    settings = diffusion_section(backend="sd_image_variations", model=str(folder), dtype="float16", inference_steps=1)
    loaded = build_backend(settings, torch.device("cpu"), 1)
    assert loaded.pipe.unet.dtype == torch.float16 and loaded.pipe.vae.dtype == torch.float16


def test_outputs_are_denormalised_in_float32(models):
    """In bfloat16, (x / 2 + 0.5) rounds to 8 bits of mantissa: up to a grey level off after × 255."""
    settings = diffusion_section(
        backend="sd_image_variations",
        **models["sd_image_variations"],
        dtype="bfloat16",
        inference_steps=2,
        height=32,
        width=32,
    )
    backend = build_backend(settings, torch.device("cpu"), 1)
    decoded = []
    decode = backend.pipe.vae.decode

    def keep(*args, **kwargs):
        out = decode(*args, **kwargs)
        decoded.append(out[0] if isinstance(out, tuple) else out.sample)
        return out

    backend.pipe.vae.decode = keep
    out = backend.generate(batch_of(1, 1, side=32))
    (sample,) = decoded
    assert sample.dtype == torch.float32
    assert torch.equal(out.flatten(0, 1), (sample.float() / 2 + 0.5).clamp(0, 1))


def test_generation_json_names_the_software_stack_and_a_resume_on_another_is_named(tmp_path, capsys, tiny_vd_model):
    import diffusers

    data = make_image_folder(tmp_path / "src", classes=("cat",), per_class=2, size=16)
    config = variation_config_dict(data, tmp_path / "out", tiny_vd_model)
    del config["backdoor"]
    assert generate(tmp_path, config) == 0
    path = tmp_path / "out" / "generation.json"
    (stack,) = json.loads(path.read_text())["environments"]
    assert stack["torch"] == torch.__version__ and stack["diffusers"] == diffusers.__version__
    assert stack["device"] == "cpu" and stack["gpu"] is None and "transformers" in stack

    record = json.loads(path.read_text())
    record["environments"] = [{**stack, "torch": "2.0.0", "gpu": "NVIDIA A100-SXM4-40GB", "device": "cuda"}]
    path.write_text(json.dumps(record))
    (tmp_path / "out" / "cat" / "0000.png").unlink()
    capsys.readouterr()
    assert generate(tmp_path, config, name="again.yaml") == 0
    err = capsys.readouterr().err
    assert "was started on another software stack" in err
    assert f"torch: '2.0.0' → '{torch.__version__}'" in err and "gpu: 'NVIDIA A100-SXM4-40GB' → None" in err
    assert len(json.loads(path.read_text())["environments"]) == 2  # both stacks stay on record


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_each_machines_first_process_downloads_before_the_others(rank, monkeypatch, tmp_path):
    from utils import distributed
    from variations.backends import diffusers_pipeline, hub_files

    events = []
    monkeypatch.setattr(distributed, "local_rank", lambda: rank)
    monkeypatch.setattr(distributed, "barrier", lambda: events.append("barrier"))
    monkeypatch.setattr(hub_files, "fetch", lambda *args: events.append("fetch") or tmp_path)
    request = diffusers_pipeline.PipelineRequest(object, "owner/model")
    assert diffusers_pipeline.model_folder(request, {}) == tmp_path
    assert events == (["fetch", "barrier"] if rank == 0 else ["barrier", "fetch"])


def test_compile_warm_up_is_not_counted_in_images_per_second(tmp_path):
    from datasets.image_folder import scan_image_folder
    from datasets.poisoned_image_folder import PoisonedImageFolder
    from variations.generator import GenerationJob
    from variations.generator import generate as run_generation
    from variations.output_plan import OutputLayout, plan_outputs

    class Compiled:
        """One image per call; the first call takes as long as compiling a UNet would (scaled down)."""

        device, model_batch_size, numerics = torch.device("cpu"), 1, {"compile": True}

        def __init__(self):
            self.calls = 0

        def generate(self, batch):
            self.calls += 1
            time.sleep(0.5 if self.calls == 1 else 0.01)
            return torch.full((len(batch), 1, 3, 8, 8), 0.5)

    data = make_image_folder(tmp_path / "src", classes=("cat",), per_class=5, size=8)
    index = scan_image_folder(data)
    plan = plan_outputs(index.samples, index.classes, None)
    job = GenerationJob(plan, OutputLayout(tmp_path / "out", index.classes, 1), 0, "none", 1, 0, show_progress=False)
    (tmp_path / "out" / "cat").mkdir(parents=True)
    stats = run_generation(Compiled(), PoisonedImageFolder(index.samples, 8, output="uint8"), job)
    assert stats.written == 5 and stats.warmup_images == 1 and stats.warmup_seconds >= 0.5
    assert stats.images_per_second > 20  # 4 images in ~0.05 s; with the warm-up it would be 5 in ~0.55 s (< 10)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("backend", DIFFUSION_BACKENDS)
def test_every_backend_runs_in_half_precision(models, backend, dtype):
    settings = diffusion_section(
        backend=backend, **models[backend], dtype=dtype, num_variations=2, inference_steps=4, height=32, width=32
    )
    loaded = build_backend(settings, torch.device("cpu"), 1)
    assert loaded.numerics["dtype"] == dtype
    denoiser = getattr(loaded.pipe, type(loaded).denoiser)
    assert all(p.dtype == getattr(torch, dtype) for p in denoiser.parameters())
    out = loaded.generate(batch_of(1, 2))
    assert out.shape == (1, 2, 3, 32, 32) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out[0, 0], out[0, 1])  # each variation its own noise, in half precision too
