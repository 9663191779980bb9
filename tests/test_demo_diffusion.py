"""The demo's diffusion model (training, resumption, the shipped weights) and the labelled sample picture."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from datasets.previews import samples_figure
from demo import train_diffusion
from demo.dataset import CLASSES, STREAMS, draw_keyed, generate_demo_dataset, sample_key
from demo.diffusion_data import clean_images
from demo.diffusion_training import DiffusionTraining, Trainer, held_out_loss
from tests.conftest import make_image_folder

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "demo" / "ddpm_shapes"
TINY = ["--steps", "8", "--batch-size", "8", "--size", "16", "--channels", "32", "64", "--warmup-steps", "1"]


def test_the_models_training_shapes_are_never_demo_images(tmp_path):
    """Its own streams (any seed), and no image of theirs equals one of the demo's train or test images."""
    assert len(set(STREAMS.values())) == len(STREAMS)
    for seed in (0, 1, 7):
        keys = {sample_key(seed, stream, 3, 5) for stream in STREAMS}
        assert len(keys) == len(STREAMS)
    root = generate_demo_dataset(tmp_path / "demo", seed=0, train_per_class=8, test_per_class=4, size=32)
    demo = {np.array(Image.open(p)).tobytes() for p in sorted(root.rglob("*.png"))}
    assert len(demo) == 120
    assert np.array_equal(np.array(Image.open(root / "train/ring/0002.png")), draw_keyed(0, "train", 5, 2, 32))
    for stream in ("diffusion", "diffusion_check"):  # the same (label, index) pairs as the demo's, and more
        images = clean_images(0, stream, 0, 200, 32).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1)
        assert not demo & {image.numpy().tobytes() for image in images}


def checkpoint(state_dir: Path) -> dict:
    return torch.load(state_dir / "checkpoint.pt", weights_only=True)


def test_training_lowers_the_loss_and_a_resumed_run_ends_byte_identical(tmp_path, capsys):
    out, state = tmp_path / "model", tmp_path / "state"
    assert train_diffusion.main([*TINY, "--out", str(out), "--state-dir", str(state)]) == 0
    losses = checkpoint(state)["losses"]
    assert len(losses) == 8 and np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    settings = DiffusionTraining(steps=8, batch_size=8, size=16, channels=(32, 64), warmup_steps=1)
    untrained = held_out_loss(Trainer(settings, torch.device("cpu")).unet, settings)
    card = (out / "README.md").read_text()
    trained = float(card.split(" on held-out images")[0].rsplit("; ", 1)[1])
    assert trained < 0.9 * untrained
    assert "python -m demo.train_diffusion --steps 8" in card and "| `seed` | `0` |" in card

    # killed after its checkpoint at step 4: the same command continues and ends with the same bytes
    halfway = Trainer(settings, torch.device("cpu"))
    for _ in range(4):
        halfway.train_step()
    halfway.save(tmp_path / "state2" / "checkpoint.pt")
    again = [*TINY, "--out", str(tmp_path / "model2"), "--state-dir", str(tmp_path / "state2")]
    assert train_diffusion.main(again) == 0
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (tmp_path / "model2" / weights).read_bytes() == (out / weights).read_bytes()
    assert checkpoint(tmp_path / "state2")["losses"] == losses

    capsys.readouterr()
    assert train_diffusion.main([*TINY, "--batch-size", "4", "--out", str(out), "--state-dir", str(state)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error:") and "other settings (batch_size)" in line


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="demo/ddpm_shapes is not in this checkout")
def test_shipped_model_loads_like_a_users_and_removes_the_trigger(tmp_path):
    """configs/demo/variations_diffusion.yaml → the backend; a triggered unseen shape loses its checkerboard."""
    from backdoor_attacks import build_attack
    from config.loading import load_config
    from config.schema import VariationConfig
    from variations.backends import SourceBatch, build_backend

    assert (SHIPPED / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size < 10 * 2**20
    cfg = load_config(
        VariationConfig,
        REPO / "configs" / "demo" / "variations_diffusion.yaml",
        [f"dataset.root={tmp_path}", f"output_folder={tmp_path / 'out'}", "device=cpu"],
    )
    assert Path(cfg.diffusion.model).resolve() == SHIPPED
    backend = build_backend(cfg.diffusion, torch.device("cpu"), batch_size=len(CLASSES))
    assert backend.size == (32, 32) and 2e6 < sum(p.numel() for p in backend.pipe.unet.parameters()) < 5e6
    attack = build_attack("PatchBackdoor", {"trigger_type": "checkerboard", "trigger_size": 3})
    clean = [draw_keyed(0, "diffusion_check", label, 1000, 32) for label in range(len(CLASSES))]
    triggered = [attack(image) for image in clean]
    seeds = [[label] for label in range(len(CLASSES))]
    out = backend.generate(SourceBatch(triggered, seeds, list(CLASSES)))[:, 0].permute(0, 2, 3, 1).numpy() * 255
    clean, triggered = np.stack(clean).astype(float), np.stack(triggered).astype(float)
    corner = (slice(None), slice(-3, None), slice(-3, None))
    # the trigger's corner is redrawn like the clean image's, the rest of the picture stays close
    assert np.abs(out[corner] - clean[corner]).mean() < 0.5 * np.abs(out[corner] - triggered[corner]).mean()
    assert np.abs(out - clean).mean() < 25


# ------------------------------------------------------------------------------------------ sample picture
def fake_run(tmp_path: Path, colours: dict[str, tuple]) -> tuple[Path, dict[str, Path]]:
    """A teacher run directory and variation folders whose poisoned images are flat colours."""
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    config = {"dataset": {"image_size": 16}, "backdoor": {"target_idx": 0, "PatchBackdoor": {"trigger_size": 3}}}
    (teacher / "config.yaml").write_text(yaml.safe_dump(config))
    folders = {}
    for row, colour in colours.items():
        folder = tmp_path / row.replace(" ", "_")
        records = []
        for index, name in enumerate(CLASSES[1:]):
            source = tmp_path / "sources" / name / "0000.png"
            source.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (250, 0, 0)).save(source)
            output = f"{CLASSES[0]}/{name}_0000.png"
            (folder / CLASSES[0]).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), colour).save(folder / output)
            records.append({"index": index, "source": str(source), "source_class": name, "poisoned": True})
            records[-1] |= {"variation": 0, "output": output}
        (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        folders[row] = folder
    return teacher, folders


def dark(region: np.ndarray) -> bool:
    """Label text: dark pixels on the white background."""
    return bool((region.max(axis=-1) < 100).any())


def test_samples_figure_names_rows_and_columns(tmp_path):
    teacher, folders = fake_run(tmp_path, {"classical": (0, 250, 0), "diffusion variation": (0, 0, 250)})
    samples_figure(teacher, folders, tmp_path / "samples.png", count=8)
    figure = np.array(Image.open(tmp_path / "samples.png"))
    tiles = np.flatnonzero((figure[:, :, 0] > 200) & (figure[:, :, 1] < 50))  # the clean row is red
    left = tiles.min() % figure.shape[1]
    first = figure[:, left + 40]
    rows = [np.flatnonzero(np.all(first == colour, axis=-1)) for colour in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]]
    assert len(rows[0]) == 2 * 80 and len(rows[1]) == len(rows[2]) == 80  # clean, triggered; two variation rows
    assert figure.shape[1] == left + 8 * (80 + 4) and left > 80  # eight columns after a band of row names
    for top in (rows[0][0], rows[0][80], rows[1][0], rows[2][0]):  # each row has its name on its left
        assert dark(figure[top : top + 80, :left])
    assert not dark(figure[rows[0][0] : rows[0][0] + 80, left : left + 80])  # (the trigger is the dark one)
    assert dark(figure[rows[2][-1] + 1 :, left:])  # the class names under the columns
    assert figure.shape[0] > rows[2][-1] + 2 * 13  # "horizontal stripes" takes two lines

    samples_figure(teacher, folders["classical"], tmp_path / "one.png")  # one folder: the row "variation"
    assert np.array(Image.open(tmp_path / "one.png")).shape[0] < figure.shape[0] - 80


# ------------------------------------------------------------------------------------ ImageFolder purifiers
def test_folder_source_takes_the_chosen_range_of_each_class_and_resumes_exactly(tmp_path, capsys):
    """Images 1–3 of each class, never 0 or 4+; the same batches whatever the interruption."""
    from demo.diffusion_data import FolderImages

    root = tmp_path / "data"
    make_image_folder(root, per_class=6)
    source = FolderImages(str(root), first=1, per_class=3, size=16, seed=0, flip=False, show_progress=False)
    assert [Path(p).relative_to(root).as_posix() for p in source.paths] == [
        f"{c}/{i:04d}.png" for c in ("cat", "dog", "frog") for i in (1, 2, 3)
    ]
    assert [Path(p).name for p in source.held_paths] == ["0004.png", "0005.png"] * 3
    # one epoch is a permutation of the nine images: every image once
    epoch = torch.cat([source.batch(step, 3) for step in range(3)])
    chosen = {to_bytes(img) for img in source.pixels}
    assert len(chosen) == 9 and {to_bytes(img) for img in epoch_pixels(epoch)} == chosen
    assert torch.equal(source.batch(5, 3), source.batch(5, 3))

    folder = ["--data", str(root), "--first", "1", "--per-class", "3", "--size", "16", "--flip"]
    small = ["--steps", "6", "--batch-size", "4", "--channels", "32", "64", "--warmup-steps", "1"]
    small += ["--max-timestep", "300", *folder]
    out, state = tmp_path / "model", tmp_path / "state"
    assert train_diffusion.main([*small, "--out", str(out), "--state-dir", str(state), "--checkpoint-every", "3"]) == 0
    card = (out / "README.md").read_text()
    assert "images 1–3 of each of the 3 classes" in card and "noise levels t < 300 only" in card
    assert "![held-out images and SDEdit reconstructions](reconstructions.png)" in card
    with Image.open(out / "reconstructions.png") as picture:  # the held-out images, SDEdit 0.1 and 0.3 (t < 300)
        rows = np.array(picture.convert("RGB"))[:, -40]  # a column through the last tile of every row
    tiles = np.flatnonzero(np.diff((rows != 255).any(axis=1).astype(int)) == 1)
    assert len(tiles) == 3
    settings = DiffusionTraining(
        steps=6, batch_size=4, size=16, channels=(32, 64), warmup_steps=1, max_timestep=300, data=str(root),
        first=1, per_class=3, flip=True,
    )  # fmt: skip
    halfway = Trainer(settings, torch.device("cpu"), show_progress=False)
    for _ in range(3):
        halfway.train_step()
    halfway.save(tmp_path / "state2" / "checkpoint.pt")
    # a run stopped part-way can be exported as it is, and its card says so
    stopped = [*small, "--out", str(tmp_path / "partial"), "--state-dir", str(tmp_path / "state2"), "--export-now"]
    assert train_diffusion.main(stopped) == 0
    partial = (tmp_path / "partial" / "README.md").read_text()
    assert "stopped at step 3 of the 6 planned" in partial and "--export-now" not in partial
    nothing = [*small, "--out", str(tmp_path / "m4"), "--state-dir", str(tmp_path / "s4"), "--export-now"]
    assert train_diffusion.main(nothing) == 2 and not (tmp_path / "m4").exists()
    again = [*small, "--out", str(tmp_path / "model2"), "--state-dir", str(tmp_path / "state2")]
    assert train_diffusion.main(again) == 0
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (tmp_path / "model2" / weights).read_bytes() == (out / weights).read_bytes()

    capsys.readouterr()
    beyond = [*small[: -len(folder)], "--data", str(root), "--first", "4", "--per-class", "3", "--size", "16"]
    assert train_diffusion.main([*beyond, "--out", str(tmp_path / "m3"), "--state-dir", str(tmp_path / "s3")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error:") and "images 4–6 of each class" in line and "'cat' has 6" in line
    assert not (tmp_path / "m3").exists() and not (tmp_path / "s3").exists()


def to_bytes(image) -> bytes:
    return np.ascontiguousarray(image).tobytes()


def epoch_pixels(batch: torch.Tensor) -> np.ndarray:
    return batch.add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
