"""The trigger-survival screen: its arithmetic on models whose answer is known, and the command on tiny data."""

import json

import numpy as np
import pytest
import torch

from backdoor_attacks import build_attack
from tests.conftest import REPO, make_image_folder
from variations.trigger_survival import screen, survival

CLASSES = ["a", "b"]


class Identity:
    """A 'variation model' that returns its source unchanged: the trigger passes through whole."""

    model_batch_size = None
    device = torch.device("cpu")

    def generate(self, batch):
        pixels = torch.from_numpy(np.stack(batch.images)).permute(0, 3, 1, 2).float() / 255
        return pixels.unsqueeze(1)


class Fixed(Identity):
    """A model that draws the same image whatever it is given: nothing of the trigger survives."""

    def __init__(self, image: np.ndarray):
        self.image = torch.from_numpy(image).permute(2, 0, 1).float() / 255

    def generate(self, batch):
        return self.image.expand(len(batch.images), 1, *self.image.shape).clone()


class HalfTrigger(Identity):
    """Returns the mean of the source and a fixed image: half of any change passes through."""

    def __init__(self, image: np.ndarray):
        self.fixed = Fixed(image)

    def generate(self, batch):
        return (super().generate(batch) + self.fixed.generate(batch)) / 2


def images(count=4, side=16, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(40, 200, (side, side, 3), dtype=np.uint8) for _ in range(count)]


BADNETS = build_attack("PatchBackdoor", {"trigger_type": "checkerboard", "trigger_size": 3})


def test_identity_keeps_all_of_the_trigger_and_a_fixed_image_none():
    sources = images()
    kept = screen(Identity(), BADNETS, sources, CLASSES * 2, seed=0)
    assert kept.survival == pytest.approx(1.0) and kept.fidelity == 0.0
    # a 3×3 checkerboard on 16×16 images: 9 of 256 pixels change, each by its distance to 0 or 255
    change = np.abs(np.stack([BADNETS(s) for s in sources]).astype(float) - np.stack(sources)).mean()
    assert kept.trigger_change == pytest.approx(change) and kept.trigger_change > 0
    grey = np.full((16, 16, 3), 128, np.uint8)
    gone = screen(Fixed(grey), BADNETS, sources, CLASSES * 2, seed=0)
    assert gone.survival == 0.0
    assert gone.fidelity == pytest.approx(np.abs(np.stack(sources).astype(float) - 128).mean())


def test_survival_is_the_projection_on_the_triggers_change():
    sources = images(side=8)
    half = screen(HalfTrigger(np.zeros((8, 8, 3), np.uint8)), BADNETS, sources, CLASSES * 2, seed=0)
    assert half.survival == pytest.approx(0.5, abs=0.02)  # uint8 rounding of the halves
    clean, triggered = np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3))
    triggered[0, 0, 0] = 100
    amplified = triggered * 2
    assert survival(clean, triggered, clean, amplified) == pytest.approx(2.0)
    assert survival(clean, triggered, clean, -triggered) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="changes no pixel"):
        survival(clean, clean, clean, triggered)


def test_screen_command_tabulates_every_pair(tmp_path, capsys):
    import screen_triggers

    data = make_image_folder(tmp_path / "data", per_class=3, size=32)
    argv = [
        *("--attacks", str(REPO / "configs/demo/teacher.yaml"), str(REPO / "configs/demo/teacher_blended.yaml")),
        *("--variations", str(REPO / "configs/demo/variations.yaml")),
        str(REPO / "configs/demo/variations.yaml") + ":diffusion.classical.blur_sigma=3",
        *("--data", str(data), "--first", "1", "--per-class", "2", "--device", "cpu", "--out", str(tmp_path / "s")),
    ]
    assert screen_triggers.main(argv) == 0
    rows = json.loads((tmp_path / "s" / "screen.json").read_text())["rows"]
    assert [(r["attack"], r["variations"]) for r in rows] == [
        ("PatchBackdoor", "variations"),
        ("blended", "variations"),
        ("PatchBackdoor", "variations diffusion.classical.blur_sigma=3"),
        ("blended", "variations diffusion.classical.blur_sigma=3"),
    ]
    assert all(r["images"] == 6 for r in rows)
    # the classical baseline keeps part of each trigger; a stronger blur changes the clean images more
    assert all(0.1 < r["survival"] < 0.9 for r in rows) and rows[2]["fidelity"] > rows[0]["fidelity"]
    assert "| blended |" in (tmp_path / "s" / "screen.md").read_text()
    capsys.readouterr()
    assert screen_triggers.main([*argv[:-4], "--first", "3", "--per-class", "2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "class 'cat' has 3 images; --first 3 --per-class 2 needs 5" in line


def test_documented_screen_command_runs(tmp_path, capsys):
    """The docs' command, on a demo dataset of its own (one image per class) and a fresh output folder."""
    import shlex

    import screen_triggers
    from demo.dataset import generate_demo_dataset
    from tests.test_readme import bash_commands

    (command,) = [c for c in bash_commands() if c.startswith("python screen_triggers.py")]
    argv = shlex.split(command)[2:]
    argv[argv.index("--data") + 1] = str(generate_demo_dataset(tmp_path / "demo", 0, 1, 1, 32) / "train")
    argv[argv.index("--out") + 1] = str(tmp_path / "screen")
    argv[argv.index("--per-class") + 1] = "1"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        assert screen_triggers.main(argv) == 0
    rows = json.loads((tmp_path / "screen" / "screen.json").read_text())["rows"]
    assert len(rows) == 6 and all(r["images"] == 10 for r in rows)
    by = {(r["attack"], r["variations"]): r for r in rows}
    # more noise, less of the checkerboard and more change to the content
    low, high = (
        by["PatchBackdoor", "variations_diffusion"],
        by["PatchBackdoor", "variations_diffusion diffusion.strength=0.5"],
    )
    assert high["survival"] < low["survival"] and high["fidelity"] > low["fidelity"]
