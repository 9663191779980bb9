"""Trigger pixels for every trigger type, both input kinds, both locations, and the attack registry."""

import numpy as np
import pytest
import torch
from PIL import Image

from backdoor_attacks import ATTACKS, BlendedBackdoor, PatchBackdoor, build_attack
from backdoor_attacks.patch_backdoor import make_patch_pattern

GREY = 100


def grey_uint8(size=12):
    return np.full((size, size, 3), GREY, np.uint8)


def grey_float(size=12):
    return torch.full((3, size, size), GREY / 255)


def test_checkerboard_is_i_plus_j_parity_with_black_top_left():
    pattern = make_patch_pattern("checkerboard", 4)
    expected = np.array([[0, 255, 0, 255], [255, 0, 255, 0], [0, 255, 0, 255], [255, 0, 255, 0]])
    for channel in range(3):
        np.testing.assert_array_equal(pattern[:, :, channel], expected)


@pytest.mark.parametrize(
    ("trigger_type", "top_left", "next_pixel"),
    [
        ("white", (255, 255, 255), (255, 255, 255)),
        ("black", (0, 0, 0), (0, 0, 0)),
        ("#ff8000", (255, 128, 0), (255, 128, 0)),
        ("checkerboard", (0, 0, 0), (255, 255, 255)),
        ("checkerboard_#ffff00_#0000ff", (0, 0, 255), (255, 255, 0)),  # c2 where i + j is even, as the reference
        ("CheckerBoard", (0, 0, 0), (255, 255, 255)),  # names are case-insensitive, as in the reference
    ],
)
def test_patch_pixels_uint8_bottom_right(trigger_type, top_left, next_pixel):
    attack = PatchBackdoor(trigger_type=trigger_type, trigger_size=3)
    image = grey_uint8()
    out = attack(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert tuple(out[9, 9]) == top_left
    assert tuple(out[9, 10]) == next_pixel
    assert (out[:9] == GREY).all() and (out[:, :9] == GREY).all()  # nothing outside the 3×3 corner
    assert (image == GREY).all()  # the input is not modified


@pytest.mark.parametrize("trigger_type", ["white", "black", "#ff8000", "checkerboard", "checkerboard_#ffff00_#0000ff"])
def test_patch_float_matches_uint8(trigger_type):
    attack = PatchBackdoor(trigger_type=trigger_type, trigger_size=4)
    from_uint8 = attack(grey_uint8())
    from_float = attack(grey_float())
    assert from_float.dtype == torch.float32 and from_float.shape == (3, 12, 12)
    np.testing.assert_allclose(from_float.permute(1, 2, 0).numpy() * 255, from_uint8, atol=1e-4)


def test_checkerboard_float_values_are_exactly_zero_and_one():
    out = PatchBackdoor("checkerboard", 3)(grey_float())
    patch = out[:, 9:, 9:]
    assert set(patch.unique().tolist()) == {0.0, 1.0}
    assert patch[:, 0, 0].tolist() == [0.0, 0.0, 0.0]


def test_random_location_is_deterministic_per_image_and_shared_by_both_kinds():
    attack = PatchBackdoor("white", 3, trigger_loc="random")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 200, (20, 20, 3), dtype=np.uint8) for _ in range(6)]  # < 255: patch is visible
    spots = []
    for image in images:
        out = attack(image)
        rows, cols = np.nonzero((out == 255).all(axis=2))
        assert len(rows) == 9 and rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
        spots.append((rows.min(), cols.min()))
        assert np.array_equal(attack(image), out)  # same image, same spot
        as_float = attack(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
        assert (as_float[:, rows.min(), cols.min()] == 1).all()
    assert len(set(spots)) > 1  # the spot depends on the image
    assert any(r != c for r, c in spots)  # rows and columns are drawn independently


def test_patch_larger_than_image_fails_clearly():
    with pytest.raises(ValueError, match="does not fit"):
        PatchBackdoor("white", 13)(grey_uint8(12))


def test_blended_random_trigger_formula_uint8_and_float():
    attack = BlendedBackdoor(image_size=12, trigger_type="random", blend_ratio=0.2)
    expected_trigger = torch.randint(0, 255, (12, 12, 3), generator=torch.Generator().manual_seed(42)) / 255
    torch.testing.assert_close(attack.trigger, expected_trigger)
    out = attack(grey_uint8())
    expected = np.rint(0.8 * GREY + 0.2 * expected_trigger.numpy().astype(np.float64) * 255)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
    out_float = attack(grey_float())
    torch.testing.assert_close(out_float, 0.8 * grey_float() + 0.2 * expected_trigger.permute(2, 0, 1))


def test_blended_ratio_zero_and_one():
    image = grey_uint8()
    assert np.array_equal(BlendedBackdoor(12, blend_ratio=0.0)(image), image)
    full = BlendedBackdoor(12, blend_ratio=1.0)
    np.testing.assert_array_equal(full(image), np.rint(full.trigger.numpy().astype(np.float64) * 255))


def test_blended_image_file_trigger_is_resized(tmp_path):
    pattern = np.zeros((4, 4, 3), np.uint8)
    pattern[:, :, 0] = 255  # pure red
    Image.fromarray(pattern).save(tmp_path / "red.png")
    attack = BlendedBackdoor(image_size=12, trigger_type=str(tmp_path / "red.png"), blend_ratio=0.5)
    assert attack.trigger.shape == (12, 12, 3)
    out = attack(np.zeros((12, 12, 3), np.uint8))
    assert (out[..., 0] == 128).all() and (out[..., 1:] == 0).all()


def test_blended_size_mismatch_fails_clearly():
    with pytest.raises(ValueError, match="image_size"):
        BlendedBackdoor(image_size=8)(grey_uint8(12))


def test_registry_builds_by_name_and_lists_valid_names():
    assert set(ATTACKS) == {"PatchBackdoor", "BlendedBackdoor", "SIGBackdoor", "WaNetBackdoor", "BppBackdoor"}
    assert isinstance(build_attack("PatchBackdoor", {"trigger_size": 2}), PatchBackdoor)
    with pytest.raises(ValueError, match="BlendedBackdoor, BppBackdoor, PatchBackdoor, SIGBackdoor, WaNetBackdoor"):
        build_attack("WaNet", {})


@pytest.mark.parametrize("bad", ["checkers", "#12345", "#gg0000", "checkerboard_#ff0000"])
def test_unknown_trigger_types_are_rejected(bad):
    with pytest.raises(ValueError, match="checkerboard"):
        PatchBackdoor(trigger_type=bad)
