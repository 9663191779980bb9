"""Every diffusion backend, end to end on tiny random pipelines laid out like their hub repositories.

Each loads through ``from_pretrained`` from a folder written by ``save_pretrained`` (extras the backend never
loads included: Versatile Diffusion's text UNet, safety checkers, Kandinsky's prior transformer), generates two
variations per image through generate_variations.py, resumes to the same bytes, and feeds a student.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import variations.run
from cli.runner import run_training_script
from config.schema import StudentConfig
from tests.conftest import make_image_folder, run_script, variation_config_dict, write_config
from tests.test_student import save_tiny_teacher, student_config_dict
from tests.test_variations import generate, png_bytes
from training.roles import StudentRole
from utils.atomic_io import TEMP_MARKER
from variations.backends import BACKENDS, build_backend, diffusion_section
from variations.backends.hub_files import needed_files

DIFFUSION_BACKENDS = [
    "versatile_diffusion",
    "sd_image_variations",
    "sd_img2img",
    "stable_unclip",
    "kandinsky22",
    "ddpm_sdedit",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(random_models) -> dict[str, dict[str, str]]:
    return random_models


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("backend_data")
    return {
        "train": make_image_folder(root / "train", per_class=2, size=16, seed=4),
        "test": make_image_folder(root / "test", per_class=2, size=16, seed=5),
    }


def backend_config(data, output: Path, models: dict, backend: str, **diffusion) -> dict:
    """Two variations per image, two steps, model batches of two; img2img keeps the sources' 16×16 size."""
    keys = models[backend]
    config = variation_config_dict(data["train"], output, keys["model"])
    config["backdoor"]["poisoning_rate"] = 0.25  # one image of four: every class keeps an image for the student
    config["diffusion"].update({"backend": backend, "num_variations": 2, "model_batch_size": 2, **keys, **diffusion})
    if backend == "sd_img2img" and "height" not in diffusion:
        del config["diffusion"]["height"], config["diffusion"]["width"]
    return config


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


# shared settings exercised on the way: a swapped scheduler, embedding noise, Lab colour transfer
EXTRA = {
    "stable_unclip": {"scheduler": "DPMSolverMultistepScheduler", "noise_level": 100},
    "kandinsky22": {"scheduler": "DPMSolverMultistepScheduler"},
    "sd_img2img": {"color_transfer": "lab"},
}


@pytest.mark.parametrize("backend", DIFFUSION_BACKENDS)
def test_backend_generates_resumes_to_the_same_bytes_and_trains_a_student(tmp_path, backend, models, data):
    out = tmp_path / "out"
    config = backend_config(data, out, models, backend, **EXTRA.get(backend, {}))
    assert generate(tmp_path, config) == 0
    first = png_bytes(out)
    assert len(first) == 12 and len(records(out)) == 12  # 6 images × 2 variations
    side = 16 if backend == "sd_img2img" else 32
    for name, content in first.items():
        with Image.open(out / name) as image:
            assert image.size == (side, side) and image.mode == "RGB"
        if name.endswith("_v0.png"):
            assert content != first[name.replace("_v0", "_v1")]  # each variation its own noise
    generation = json.loads((out / "generation.json").read_text())
    assert (generation["dtype"], generation["model_batch_size"]) == ("float32", 2)

    # resume: some outputs gone, a half-written file left behind by a killed writer
    for name in sorted(first)[::4]:
        (out / name).unlink()
    (out / "dog" / f"0000_v0.png{TEMP_MARKER}killed").write_bytes(b"\x89PNG half")
    assert generate(tmp_path, config, name="again.yaml") == 0
    assert png_bytes(out) == first
    assert not [p for p in out.rglob("*") if TEMP_MARKER in p.name]

    teacher, _ = save_tiny_teacher(tmp_path / "teacher")
    student = student_config_dict(data, out, tmp_path / "students", str(teacher))
    student["training"]["num_epochs"] = 1
    path = write_config(tmp_path / "student.yaml", student)
    assert run_training_script(StudentConfig, StudentRole(), "student", ["-c", str(path)]) == 0
    (run,) = (tmp_path / "students").iterdir()
    (metrics,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert math.isfinite(metrics["train/loss"]) and metrics["train/images_per_second"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert 0 <= summary["student"]["clean_accuracy"] <= 1


class PipelineSpy:
    """Stands between a backend and its real diffusers pipeline, recording each call's arguments."""

    def __init__(self, pipe, calls: list):
        self.pipe, self.calls = pipe, calls

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.pipe(**kwargs)


@pytest.fixture
def pipeline_calls(monkeypatch) -> list[dict]:
    """The keyword arguments of every pipeline call generate_variations.py makes (the real pipeline runs)."""
    calls, build = [], variations.run.build_backend

    def spied(*args):
        backend = build(*args)
        backend.pipe = PipelineSpy(backend.pipe, calls)
        return backend

    monkeypatch.setattr(variations.run, "build_backend", spied)
    return calls


def test_img2img_prompts_name_the_poisoned_class_and_sizes_follow_the_source(tmp_path, models, data, pipeline_calls):
    config = backend_config(data, tmp_path / "out", models, "sd_img2img", model_batch_size=1)
    config["diffusion"]["negative_prompt"] = "blurry"
    assert generate(tmp_path, config) == 0
    manifest = records(tmp_path / "out")
    assert len(pipeline_calls) == 6  # one image (and its two variations) per call, in ImageFolder order
    assert sum(r["poisoned"] for r in manifest[::2]) == 1
    for call, record in zip(pipeline_calls, manifest[::2], strict=True):
        # a poisoned dog or frog is filed under the target class, and its prompt says so
        assert record["class"] == ("cat" if record["poisoned"] else record["source_class"])
        assert call["prompt"] == [f"a photo of a {record['class']}"] * 2
        assert call["negative_prompt"] == ["blurry"] * 2 and call["strength"] == 0.5
        assert [image.size for image in call["image"]] == [(16, 16)] * 2
    pipeline_calls.clear()
    config = backend_config(data, tmp_path / "sized", models, "sd_img2img", height=24, width=40)
    assert generate(tmp_path, config, name="sized.yaml") == 0
    assert {image.size for call in pipeline_calls for image in call["image"]} == {(40, 24)}
    with Image.open(next((tmp_path / "sized").rglob("*.png"))) as image:
        assert image.size == (40, 24)


@pytest.mark.parametrize(
    ("backend", "change", "message"),
    [
        ("sd_img2img", {"model": "{tmp}/missing"}, "diffusion.model: folder not found: {tmp}/missing"),
        (
            "sd_image_variations",
            {"model": "{sd_img2img}"},
            "diffusion.model: '{sd_img2img}' holds a StableDiffusionPipeline, but this backend loads a "
            "StableDiffusionImageVariationPipeline",
        ),
        (
            "kandinsky22",
            {"prior_model": "{kandinsky22}"},
            "diffusion.prior_model: '{kandinsky22}' holds a KandinskyV22Pipeline, but this backend loads a "
            "KandinskyV22PriorPipeline",
        ),
        ("stable_unclip", {"model": "{stable_unclip}/unet"}, "'{stable_unclip}/unet' has no model_index.json"),
        ("kandinsky22", {"height": 40}, "diffusion.height: 40, but this Kandinsky decoder renders multiples of 16"),
    ],
)
def test_missing_or_wrong_model_folders_are_one_line_errors(tmp_path, capsys, models, data, backend, change, message):
    names = {"tmp": tmp_path, **{name: keys["model"] for name, keys in models.items()}}
    diffusion = {key: value.format(**names) if isinstance(value, str) else value for key, value in change.items()}
    config = backend_config(data, tmp_path / "out", models, backend, **diffusion)
    assert generate(tmp_path, config) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert message.format(**names) in error
    assert not (tmp_path / "out").exists()  # refused before anything was written


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def doubled(key: str):
    def spoil(config: Path) -> None:
        values = json.loads(config.read_text())
        config.write_text(json.dumps({**values, key: 2 * values[key]}))

    return spoil


@pytest.mark.parametrize(
    ("damage", "message"),
    [  # transformers (the CLIP encoder) and diffusers (the UNet) fail in different ways; both are one line
        (("image_encoder/model.safetensors", truncate), "'{model}/image_encoder/model.safetensors': truncated or"),
        (("unet/diffusion_pytorch_model.safetensors", truncate), "'{model}/unet/diffusion_pytorch_model.safetensors'"),
        (("image_encoder/config.json", doubled("intermediate_size")), "'{model}': weight shapes do not match the"),
        (("unet/config.json", doubled("cross_attention_dim")), "'{model}': weight shapes do not match the component"),
    ],
)
def test_corrupt_or_mismatched_weights_are_one_line_errors(tmp_path, capsys, models, data, damage, message):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(models["sd_image_variations"]["model"], model)
    name, spoil = damage
    spoil(model / name)
    config = backend_config(data, tmp_path / "out", models, "sd_image_variations", model=str(model))
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert error.startswith("error: diffusion.model: ") and message.format(model=model) in error
    if "config.json" in name:  # the key that does not fit (diffusers), or where transformers listed them
        assert "by the config)" in error or "the load report above lists them" in error
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_missing_relative_folder_beside_an_existing_one_is_not_found(tmp_path, capsys, models, data, monkeypatch):
    """``models/sd`` is a valid hub id too, so it is tried there; with a local ``models/`` the error says both."""
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    # offline, with an empty cache: huggingface_hub reads HF_HUB_OFFLINE once, at import, so set its constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    (tmp_path / "models").mkdir()
    config = backend_config(data, tmp_path / "out", models, "sd_img2img", model="models/sd")
    assert generate(tmp_path, config) == 2
    err = capsys.readouterr().err
    assert "error: diffusion.model: folder not found: models/sd (nor could hub repository 'models/sd' be" in err
    assert "Traceback" not in err


def test_kandinsky_refuses_a_wrong_prior_before_loading_the_decoder(models, monkeypatch):
    from diffusers import KandinskyV22Pipeline

    from utils.errors import UserError

    def decoder_loads(*args, **kwargs):
        raise AssertionError("the decoder's weights were read before the prior's folder was checked")

    monkeypatch.setattr(KandinskyV22Pipeline, "from_pretrained", decoder_loads)
    keys = models["kandinsky22"]
    section = diffusion_section(backend="kandinsky22", model=keys["model"], prior_model=keys["model"])
    with pytest.raises(UserError, match=r"diffusion\.prior_model: .* holds a KandinskyV22Pipeline, but this backend"):
        build_backend(section, torch.device("cpu"), 1)


def test_every_guided_backend_refuses_negative_guidance():
    from pydantic import ValidationError

    guided = [name for name, cls in BACKENDS.items() if "guidance_scale" in cls.Section.model_fields]
    assert set(guided) == set(DIFFUSION_BACKENDS) - {"ddpm_sdedit"}
    for name in guided:
        with pytest.raises(ValidationError, match="guidance_scale\\n  Input should be greater than or equal to 0"):
            diffusion_section(backend=name, model="m", guidance_scale=-2)
        assert diffusion_section(backend=name, model="m", guidance_scale=0).guidance_scale == 0


def test_variation_benchmark_defaults_to_the_gpu_figures_on_cuda_and_needs_no_data():
    from benchmarks import variation_throughput as bench

    def parsed(device: str, *argv: str):
        args = bench.parser().parse_args(["--device", device, *argv])
        args.device = torch.device(device)  # no GPU needed to check what it would run
        return bench.with_device_defaults(args)

    cuda = parsed("cuda")
    assert (cuda.size, cuda.batch_sizes, cuda.schedules) == (
        "full",
        [8, 16],
        ["default", "DPMSolverMultistepScheduler:half"],
    )
    cpu = parsed("cpu")
    assert (cpu.size, cpu.batch_sizes, cpu.schedules, cpu.data) == ("tiny", [8], ["default:10"], None)
    assert parsed("cuda", "--size", "tiny", "--batch-sizes", "2").batch_sizes == [2]
    assert parsed("cuda", "--size", "tiny").size == "tiny"
    assert [bench.schedule(name, "stable_unclip") for name in cuda.schedules] == [
        (None, 20),
        ("DPMSolverMultistepScheduler", 10),
    ]


@pytest.mark.parametrize(
    ("diffusion", "message"),
    [
        ({"strength": 0}, "diffusion.strength: Input should be greater than 0"),
        (
            {"strength": 0.2, "inference_steps": 4},
            "diffusion: strength 0.2 × inference_steps 4 leaves no denoising step",
        ),
        (
            {"height": 64, "width": None},
            "diffusion: height and width: set both, or neither to render at the model's native size",
        ),
        ({"prompt": "a {label}"}, "diffusion.prompt: unknown placeholder(s) ['label']; only {class_name}"),
        ({"noise_level": 5}, "diffusion.noise_level: unknown key; allowed here: backend, num_variations"),
    ],
)
def test_img2img_settings_are_checked_up_front(tmp_path, capsys, models, data, diffusion, message):
    config = backend_config(data, tmp_path / "out", models, "sd_img2img", **diffusion)
    assert generate(tmp_path, config) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_denoisers_run_fused_attention_of_their_own_kind(models):
    from diffusers.models.attention_processor import AttnAddedKVProcessor2_0, AttnProcessor2_0

    for backend, kind in [("kandinsky22", AttnAddedKVProcessor2_0), ("stable_unclip", AttnProcessor2_0)]:
        loaded = build_backend(diffusion_section(backend=backend, **models[backend]), torch.device("cpu"), 1)
        assert {type(p) for p in loaded.pipe.unet.attn_processors.values()} == {kind}


# --------------------------------------------------------------------------------------- download only what is used
SD15_LISTING = [  # modelled on an SD 1.x hub repository: several formats and variants per component
    ".gitattributes",
    "README.md",
    "model_index.json",
    "v1-5-pruned.ckpt",
    "v1-5-pruned-emaonly.safetensors",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/flax_model.msgpack",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model-00001-of-00002.safetensors",
    "vae/diffusion_pytorch_model-00002-of-00002.safetensors",
    "vae/diffusion_pytorch_model.onnx",
    "vae/diffusion_pytorch_model.safetensors.index.fp16.json",
    "vae/diffusion_pytorch_model.safetensors.index.json",
    "image_encoder/config.json",
    "image_encoder/pytorch_model.bin",  # only .bin: the fallback format
]


def test_needed_files_take_each_component_once_in_the_preferred_format():
    assert needed_files(SD15_LISTING, ["unet", "vae", "text_encoder", "tokenizer", "scheduler", "image_encoder"]) == [
        "image_encoder/config.json",
        "image_encoder/pytorch_model.bin",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model-00001-of-00002.safetensors",
        "vae/diffusion_pytorch_model-00002-of-00002.safetensors",
        "vae/diffusion_pytorch_model.safetensors.index.json",
    ]


def test_each_backend_takes_only_the_components_it_uses(models):
    expected = {
        "versatile_diffusion": {"image_feature_extractor", "image_encoder", "image_unet", "vae", "scheduler"},
        "sd_image_variations": {"feature_extractor", "image_encoder", "unet", "vae", "scheduler"},
        "sd_img2img": {"text_encoder", "tokenizer", "unet", "vae", "scheduler"},
        "stable_unclip": {
            "feature_extractor",
            "image_encoder",
            "image_normalizer",
            "image_noising_scheduler",
            "text_encoder",
            "tokenizer",
            "unet",
            "vae",
            "scheduler",
        },
        "kandinsky22": {"unet", "scheduler", "movq"},
    }
    for backend, components in expected.items():
        section = diffusion_section(backend=backend, **models[backend])
        index = json.loads(Path(models[backend]["model"], "model_index.json").read_text())
        assert set(BACKENDS[backend].request(section).components(index)) == components, backend
    prior = BACKENDS["kandinsky22"].prior_request(diffusion_section(backend="kandinsky22", **models["kandinsky22"]))
    index = json.loads(Path(models["kandinsky22"]["prior_model"], "model_index.json").read_text())
    assert set(index) >= {"prior", "text_encoder", "tokenizer"}  # the repository holds them; they are skipped
    assert set(prior.components(index)) == {"image_encoder", "image_processor"}


def hub_cache_with(folder: Path, cache: Path, repo: str, present: list[str]) -> None:
    """A HuggingFace cache entry for ``repo`` whose listing is all of ``folder`` but which holds ``present`` only:
    what a first run leaves behind when it fetched those files."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    storage = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text(commit)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    entries = {f: TreeCacheEntry(size=(folder / f).stat().st_size, blob_id=f"{i:040x}") for i, f in enumerate(files)}
    write_tree_cache(str(storage), commit, entries)
    for name in present:
        target = storage / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((folder / name).read_bytes())


def test_hub_load_needs_only_the_image_variation_parts_of_versatile_diffusion(tmp_path, models):
    """Offline, from a cache holding only what the backend fetches: the text UNet and encoder are never needed."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import IncompleteSnapshotError

    folder = Path(models["versatile_diffusion"]["model"])
    listing = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    section = diffusion_section(backend="versatile_diffusion", model=str(folder))
    components = (
        BACKENDS["versatile_diffusion"]
        .request(section)
        .components(json.loads((folder / "model_index.json").read_text()))
    )
    fetched = needed_files(listing, components)
    assert {f.split("/")[0] for f in listing} - {f.split("/")[0] for f in fetched} == {
        "text_unet",
        "text_encoder",
        "tokenizer",
    }
    repo, cache = "shi-labs/versatile-diffusion", tmp_path / "hf_cache"
    hub_cache_with(folder, cache, repo, fetched)
    with pytest.raises(IncompleteSnapshotError, match="text_"):  # a whole-repository download would need more
        snapshot_download(repo, cache_dir=cache, local_files_only=True)

    source = make_image_folder(tmp_path / "source", classes=("cat",), per_class=2, size=16)
    config = variation_config_dict(source, tmp_path / "out", repo, dataset={"batch_size": 2})
    del config["backdoor"]
    config["diffusion"].update(inference_steps=1, model_batch_size=2)
    path = write_config(tmp_path / "hub.yaml", config)
    offline = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_CACHE": str(cache)}
    result = run_script(tmp_path, "generate_variations.py", "-c", str(path), env=offline | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(png_bytes(tmp_path / "out")) == 2


def test_sd_image_variations_resize_without_antialiasing(models):
    """The model card's preprocessing: a plain bicubic resize to the encoder's side, then CLIP normalisation."""
    loaded = build_backend(
        diffusion_section(backend="sd_image_variations", **models["sd_image_variations"]), torch.device("cpu"), 1
    )
    image = np.random.default_rng(0).integers(0, 256, (96, 64, 3), dtype=np.uint8)
    pixels = loaded.clip_input([image])
    assert pixels.shape == (1, 3, 32, 32)
    source = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor(loaded.pipe.feature_extractor.image_mean)[:, None, None]
    std = torch.tensor(loaded.pipe.feature_extractor.image_std)[:, None, None]
    for antialias, same in [(False, True), (True, False)]:
        resized = torch.nn.functional.interpolate(source, (32, 32), mode="bicubic", antialias=antialias)
        assert torch.allclose(pixels, (resized - mean) / std, atol=1e-5) is same
