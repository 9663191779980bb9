"""The ddpm_sdedit backend with a tiny random DDPMPipeline loaded from disk, and through generate_variations.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import generate_variations
from cli.runner import run_script as run_cli
from config.schema import VariationConfig
from tests.conftest import make_image_folder, variation_config_dict, write_config
from variations.backends import SourceBatch, build_backend, diffusion_section


@pytest.fixture(scope="module")
def tiny_ddpm(tmp_path_factory) -> Path:
    from benchmarks.random_pipelines import build_random_pipeline

    folder = tmp_path_factory.mktemp("tiny_ddpm")
    build_random_pipeline("tiny", seed=0, backend="ddpm_sdedit").save_pretrained(folder)  # 16×16
    return folder


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("src") / "train", per_class=4, size=16, seed=3)


def ddpm_config(source: Path, output: Path, model: Path, **diffusion) -> dict:
    """SDEdit from half the schedule in 4 DDIM steps (2 run), output at the UNet's 16×16."""
    config = variation_config_dict(source, output, model)
    config["diffusion"] = {"backend": "ddpm_sdedit", "model": str(model), "inference_steps": 4, "strength": 0.5}
    config["diffusion"].update(diffusion)
    return config


def generate(tmp_path, config: dict, name: str = "cfg.yaml") -> int:
    path = write_config(tmp_path / name, config)
    return run_cli(VariationConfig, generate_variations.generate, generate_variations.parser(), ["-c", str(path)])


def png_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_folder_is_deterministic_and_resumes_byte_for_byte(tmp_path, source, tiny_ddpm):
    """Batch size, workers and a resume after lost files change no byte; output at the UNet's size."""
    first = ddpm_config(source, tmp_path / "a", tiny_ddpm, num_variations=2)
    assert generate(tmp_path, first, "a.yaml") == 0
    reference = png_bytes(tmp_path / "a")
    assert len(reference) == 24
    with Image.open(tmp_path / "a" / "dog" / "0000_v0.png") as image:
        assert image.size == (16, 16)
    assert reference["dog/0000_v0.png"] != reference["dog/0000_v1.png"]
    generation = json.loads((tmp_path / "a" / "generation.json").read_text())
    assert generation["size"] == [16, 16] and generation["model_batch_size"] == 1

    other = ddpm_config(source, tmp_path / "b", tiny_ddpm, num_variations=2)
    other["dataset"] |= {"batch_size": 5, "num_workers": 1}
    for name in (*sorted(reference)[3::10], "manifest.jsonl"):  # as if killed before writing them
        (tmp_path / "a" / name).unlink()
    assert generate(tmp_path, first, "a.yaml") == 0 and generate(tmp_path, other, "b.yaml") == 0
    assert png_bytes(tmp_path / "a") == reference == png_bytes(tmp_path / "b")
    assert len((tmp_path / "a" / "manifest.jsonl").read_text().splitlines()) == 24


class UNetSpy(torch.nn.Module):
    """Records the timesteps and inputs the real UNet is called with."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, sample, t):
        self.calls.append((int(t), sample.clone()))
        return self.unet(sample, t)


def test_sources_are_noised_to_strength_with_their_own_seed(tiny_ddpm):
    """DDIM, 10 steps, strength 0.3: the UNet runs at t = 200, 100, 0 from √ᾱ·x₀ + √(1−ᾱ)·ε(seed)."""
    settings = diffusion_section(backend="ddpm_sdedit", model=str(tiny_ddpm), inference_steps=10, strength=0.3)
    backend = build_backend(settings, torch.device("cpu"), batch_size=2)
    assert type(backend.pipe.scheduler).__name__ == "DDIMScheduler" and backend.size == (16, 16)
    backend.pipe.unet = spy = UNetSpy(backend.pipe.unet)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]  # resized to 16×16
    out = backend.generate(SourceBatch(images, [[11], [12]], ["cat", "dog"]))
    assert out.shape == (2, 1, 3, 16, 16) and out.min() >= 0 and out.max() <= 1
    assert [t for t, _ in spy.calls] == [200, 100, 0]
    clean = torch.stack(
        [torch.from_numpy(np.array(Image.fromarray(i).resize((16, 16), Image.Resampling.BICUBIC))) for i in images]
    )
    clean = clean.permute(0, 3, 1, 2).float() / 127.5 - 1
    noise = torch.cat([torch.randn((1, 3, 16, 16), generator=torch.Generator().manual_seed(s)) for s in (11, 12)])
    alpha_bar = backend.pipe.scheduler.alphas_cumprod[200]
    expected = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
    torch.testing.assert_close(spy.calls[0][1], expected, rtol=1e-5, atol=1e-5)

    alone = backend.generate(SourceBatch(images[1:], [[12]], ["dog"]))  # the same seed alone: the same image
    torch.testing.assert_close(alone[0], out[1], rtol=0, atol=1e-6)
    stochastic = diffusion_section(**settings.to_dict() | {"scheduler": "DDPMScheduler"})
    ddpm = build_backend(stochastic, torch.device("cpu"), batch_size=2)
    pair = ddpm.generate(SourceBatch(images, [[11], [12]], ["cat", "dog"]))  # step noise: per-variation too
    torch.testing.assert_close(ddpm.generate(SourceBatch(images[1:], [[12]], ["dog"]))[0], pair[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("diffusion", "fragment"),
    [
        ({"strength": 0}, "diffusion.strength"),
        ({"strength": 1.5}, "diffusion.strength"),
        ({"strength": 0.1, "inference_steps": 5}, "leaves no denoising step"),
        ({"guidance_scale": 3}, "guidance_scale"),
        ({"height": 20}, "diffusion.height"),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, source, tiny_ddpm, diffusion, fragment):
    assert generate(tmp_path, ddpm_config(source, tmp_path / "out", tiny_ddpm, **diffusion)) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert fragment in line and "Traceback" not in err
    assert not (tmp_path / "out").exists()
