"""Trigger pixels for every trigger type, both input kinds, both locations, and the attack registry.

Each formula is checked against an independent computation: the SIG wave column by column, WaNet's field from
the issue's recipe, Floyd–Steinberg by hand and with a raster-order loop.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from backdoor_attacks import (
    ATTACKS,
    BlendedBackdoor,
    BppBackdoor,
    PatchBackdoor,
    SIGBackdoor,
    WaNetBackdoor,
    build_attack,
)
from backdoor_attacks.patch_backdoor import make_patch_pattern
from backdoor_attacks.wanet_backdoor import WaNetBackdoorParams

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
    wanet = build_attack("WaNetBackdoor", WaNetBackdoorParams(image_size=8, seed=3))  # a Params object as it is
    assert torch.equal(wanet.grid, build_attack("WaNetBackdoor", {"image_size": 8, "seed": 3}).grid)
    with pytest.raises(ValueError, match="BlendedBackdoor, BppBackdoor, PatchBackdoor, SIGBackdoor, WaNetBackdoor"):
        build_attack("WaNet", {})


@pytest.mark.parametrize("bad", ["checkers", "#12345", "#gg0000", "checkerboard_#ff0000"])
def test_unknown_trigger_types_are_rejected(bad):
    with pytest.raises(ValueError, match="checkerboard"):
        PatchBackdoor(trigger_type=bad)


# ------------------------------------------------------------------------------------------------- SIG
def test_sig_adds_the_column_sine_in_pixel_units_and_clips():
    attack = SIGBackdoor(delta=20, frequency=6)
    image = np.full((5, 24, 3), 128, np.uint8)
    image[0] = 250  # near white: the wave is clipped at 255
    image[1] = 3  # near black: clipped at 0
    out = attack(image)
    for j in range(24):
        wave = 20 * math.sin(2 * math.pi * j * 6 / 24)
        for row, base in ((0, 250), (1, 3), (2, 128), (4, 128)):
            expected = min(255, max(0, round(base + wave)))
            assert (out[row, j] == expected).all(), (row, j)
    as_float = attack(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    assert as_float.min() >= 0 and as_float.max() <= 1
    for j in range(24):
        wave = 20 * math.sin(2 * math.pi * j * 6 / 24) / 255
        assert as_float[:, 2, j].tolist() == pytest.approx([128 / 255 + wave] * 3, abs=1e-6)
    assert np.abs(as_float.permute(1, 2, 0).numpy() * 255 - out).max() <= 0.5 + 1e-3  # uint8 = rounded float


# ----------------------------------------------------------------------------------------------- WaNet
def issue_recipe_grid(size, k=4, s=0.5, grid_rescale=1.0, seed=42):
    """The warping field exactly as issue 10 writes it."""
    g = torch.Generator().manual_seed(seed)
    ins = torch.rand(1, 2, k, k, generator=g) * 2 - 1
    ins = ins / ins.abs().mean()
    noise = F.interpolate(ins, size=size, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    x, y = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    identity = torch.stack((y, x), 2)[None]
    return torch.clamp((identity + s * noise / size) * grid_rescale, -1, 1)


def test_wanet_grid_and_warp_follow_the_recipe():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for params in ({}, {"kernel_size": 3, "strength": 2.0, "grid_rescale": 0.9, "seed": 7}):
        attack = WaNetBackdoor(WaNetBackdoorParams(image_size=16, **params))
        recipe = {"k": 4, "s": 0.5, "grid_rescale": 1.0, "seed": 42}
        recipe.update({"k": params.get("kernel_size", 4), "s": params.get("strength", 0.5)})
        recipe.update({key: params[key] for key in ("grid_rescale", "seed") if key in params})
        grid = issue_recipe_grid(16, **recipe)
        assert torch.equal(attack.grid, grid)
        floats = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        expected = F.grid_sample(floats[None], grid, align_corners=True)[0]
        torch.testing.assert_close(attack(floats), expected, rtol=0, atol=0)
        expected_uint8 = (expected * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(attack(image), expected_uint8)
        assert not np.array_equal(attack(image), image)  # the warp moves pixels


def test_wanet_without_strength_is_the_identity_and_cross_samples_add_seeded_noise():
    image = np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    still = WaNetBackdoor(WaNetBackdoorParams(image_size=12, strength=0.0))
    np.testing.assert_array_equal(still(image), image)
    attack = WaNetBackdoor(WaNetBackdoorParams(image_size=12))
    noise = torch.rand(1, 12, 12, 2, generator=torch.Generator().manual_seed(3)) * 2 - 1
    floats = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    noisy_grid = torch.clamp(attack.grid + noise / 12, -1, 1)
    expected = F.grid_sample(floats[None], noisy_grid, align_corners=True)[0]
    torch.testing.assert_close(attack.cross(floats, torch.Generator().manual_seed(3)), expected, rtol=0, atol=0)
    first, second = attack.cross(image), attack.cross(image)  # torch's global RNG: a fresh draw each time
    assert not np.array_equal(first, second) and not np.array_equal(first, attack(image))
    assert attack.cross_ratio == 2.0
    assert WaNetBackdoor(WaNetBackdoorParams(image_size=12, noise_mode=False)).cross_ratio == 0.0
    with pytest.raises(ValueError, match=r"WaNetBackdoor\.image_size"):
        attack(grey_uint8(16))


# -------------------------------------------------------------------------------------- devices and dtypes
FLOAT_ATTACKS = {
    "sig": lambda: SIGBackdoor(),
    "wanet": lambda: WaNetBackdoor(WaNetBackdoorParams(image_size=12)),
    "wanet_cross": lambda: WaNetBackdoor(WaNetBackdoorParams(image_size=12)).cross,
    "blended": lambda: BlendedBackdoor(image_size=12),
    "bpp": lambda: BppBackdoor(),
}


@pytest.mark.parametrize("name", FLOAT_ATTACKS)
def test_float_triggers_follow_the_image_device_and_dtype(name):
    """The constants made on the CPU in float32 move to the image. The "meta" device stands in for a GPU on
    CPU-only machines: an operation that mixes it with a CPU tensor fails there as it would on CUDA."""
    attack = FLOAT_ATTACKS[name]()
    out = attack(grey_float().double())
    assert out.dtype == torch.float64
    if name != "bpp":  # Bpp computes in NumPy and needs the pixel values, which a meta tensor has not
        meta = attack(torch.empty(3, 12, 12, device="meta"))
        assert meta.device.type == "meta" and meta.shape == (3, 12, 12)


# --------------------------------------------------------------------------------------------- BppAttack
def raster_floyd_steinberg(values, levels):
    """The BppAttack authors' Floyd–Steinberg, one pixel at a time in raster order (independent of the library's
    waves): the error is taken against the unrounded level k · 255 / (levels − 1), and the levels are rounded to
    integers only at the end."""
    height, width, _ = values.shape
    work = values.astype(np.float64).copy()
    out = np.zeros_like(work)
    for i in range(height):
        for j in range(width):
            old = work[i, j].copy()
            new = np.clip(np.rint(old * (levels - 1) / 255), 0, levels - 1) * 255 / (levels - 1)
            out[i, j] = new
            error = old - new
            for di, dj, share in ((0, 1, 7 / 16), (1, -1, 3 / 16), (1, 0, 5 / 16), (1, 1, 1 / 16)):
                if 0 <= i + di < height and 0 <= j + dj < width:
                    work[i + di, j + dj] += error * share
    return np.rint(out)


def test_bpp_levels_without_dither():
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    out = BppBackdoor(levels=8, dither=False)(ramp)
    assert sorted(np.unique(out).tolist()) == [0, 36, 73, 109, 146, 182, 219, 255]  # round(k · 255 / 7)
    for value in (0, 18, 19, 100, 200, 255):
        assert out.reshape(-1, 3)[value, 0] == round(round(value * 7 / 255) * 255 / 7)


def test_bpp_floyd_steinberg_on_a_hand_example_and_against_the_raster_loop():
    # 2×2 of grey 100, two levels. (0,0): 100 → 0, error 100 → right 143.75, down 131.25, down-right 106.25;
    # (0,1): 143.75 → 255, error −111.25 → down-left 131.25 − 20.859375, down-right 106.25 − 34.765625;
    # (1,0): 110.390625 → 0, error → right 71.484375 + 48.294921875 = 119.779...; (1,1): → 0.
    grey = np.full((2, 2, 3), 100, np.uint8)
    assert BppBackdoor(levels=2)(grey)[..., 0].tolist() == [[0, 255], [0, 0]]
    assert BppBackdoor(levels=2, dither=False)(grey)[..., 0].tolist() == [[0, 0], [0, 0]]
    image = np.random.default_rng(2).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    for levels in (2, 3, 8):
        np.testing.assert_array_equal(BppBackdoor(levels=levels)(image), raster_floyd_steinberg(image, levels))


def test_bpp_dither_diffuses_the_error_of_the_unrounded_level_as_the_authors_do():
    """Issue 24. Three levels: 0, 127.5 and 255 (step 127.5; the output rounds them to 0, 128, 255, half to even);
    a value goes to level 1 from 63.75 on. Red is [127, 64, 0, 0] in the first row and 0 below; green all 0,
    blue all 255 (level 2 exactly: no error).

    The authors' rule, error against the unrounded level:
      (0,0): 127 · 2 / 255 = 0.996 → level 1 = 127.5, error −0.5; (0,1) gets 7/16 · −0.5 = −0.21875.
      (0,1): 64 − 0.21875 = 63.78125 ≥ 63.75 → level 1 = 127.5, output 128; error −63.71875.
      (0,2): 0 + 7/16 · −63.71875 = −27.877 → level 0, error −27.877 (a pixel at level 0 passes its whole value on).
      From here on every pixel holds 0 plus shares of negative errors; the working values, row by row:
        row 0: 127, 63.781, −27.877, −12.196
        row 1: −12.104 (= 5/16 · −0.5 + 3/16 · −63.719), −30.466, −28.309, −17.939
        row 2: −9.495, −19.739, −22.750, −17.329
        row 3: −6.668, −13.945, −17.693, −14.578
      all above −63.75, so level 0. Red out: row 0 = [128, 128, 0, 0], the rest 0.
    Textbook Floyd–Steinberg (error against the rounded 128) differs at (0,1):
      (0,0): 127 → 128, error −1; (0,1): 64 − 7/16 = 63.5625 < 63.75 → 0.
    """
    image = np.zeros((4, 4, 3), np.uint8)
    image[0, :, 0] = [127, 64, 0, 0]
    image[..., 2] = 255
    out = BppBackdoor(levels=3, dither=True)(image)
    red = np.zeros((4, 4), np.uint8)
    red[0, :2] = 128
    np.testing.assert_array_equal(out[..., 0], red)
    np.testing.assert_array_equal(out[..., 1], np.zeros((4, 4), np.uint8))
    np.testing.assert_array_equal(out[..., 2], np.full((4, 4), 255, np.uint8))


def test_bpp_dither_keeps_local_brightness_and_float_matches_uint8():
    gradient = np.tile(np.linspace(20, 235, 32).round().astype(np.uint8)[None, :, None], (32, 1, 3))
    dithered = BppBackdoor(levels=4)(gradient).astype(float)
    plain = BppBackdoor(levels=4, dither=False)(gradient).astype(float)

    def block_means(image):
        return image[..., 0].reshape(4, 8, 4, 8).mean(axis=(1, 3))

    original = block_means(gradient.astype(float))
    assert np.abs(block_means(dithered) - original).max() < 6 < np.abs(block_means(plain) - original).max()
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    from_float = BppBackdoor()(torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    np.testing.assert_array_equal((from_float.permute(1, 2, 0).numpy() * 255).round(), BppBackdoor()(image))


# ------------------------------------------------------------------------------------------ image patches
def test_patch_from_an_image_file_is_resized_and_pasted(tmp_path):
    sticker = np.zeros((4, 4, 3), np.uint8)
    sticker[:2, :2], sticker[:2, 2:], sticker[2:, :2], sticker[2:, 2:] = (255, 0, 0), (0, 255, 0), (0, 0, 255), 255
    path = tmp_path / "My Sticker.PNG"  # the path keeps its case and spaces
    Image.fromarray(sticker).save(path, format="PNG")
    out = PatchBackdoor(trigger_type=str(path), trigger_size=4)(grey_uint8())
    np.testing.assert_array_equal(out[8:, 8:], sticker)
    assert (out[:8] == GREY).all() and (out[:, :8] == GREY).all()
    attack = PatchBackdoor(trigger_type=str(path), trigger_size=2)  # shrunk: each pixel mostly its quadrant
    small = attack(grey_uint8())[10:, 10:].astype(int)
    assert small[0, 0, 0] > 150 > small[0, 0, 1] and small[0, 1, 1] > 150 > small[0, 1, 0]
    assert small[1, 0, 2] > 150 > small[1, 0, 0] and (small[1, 1] > 150).all()
    np.testing.assert_allclose(attack(grey_float())[:, 10:, 10:].permute(1, 2, 0).numpy() * 255, small, atol=1e-4)


def test_patch_file_errors_name_the_forms_allowed(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read trigger image"):
        PatchBackdoor(trigger_type=str(tmp_path / "notes.png"))
    with pytest.raises(ValueError, match=r"checkerboard, white.*or the path of an image file; '.*missing\.png'"):
        PatchBackdoor(trigger_type=str(tmp_path / "missing.png"))
