"""The poisoned ImageFolder: poison_first both ways, random poisoning, test sets, image modes, bad files."""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from backdoor_attacks import BlendedBackdoor, PatchBackdoor
from datasets.image_folder import read_rgb, scan_image_folder
from datasets.poison_plan import Targeting, index_mask
from datasets.poisoned_image_folder import PoisonedImageFolder, Poisoning, triggered_test_set
from tests.conftest import make_image_folder
from utils.errors import UserError


@pytest.fixture
def folder(tmp_path):
    return scan_image_folder(make_image_folder(tmp_path / "train", per_class=4, size=16))


def white_patch():
    return PatchBackdoor("white", 4)


def to(target_idx, **options):
    """All-to-one targeting of ``target_idx`` among the fixture's 3 classes."""
    return Targeting(num_classes=3, target_idx=target_idx, **options)


def test_scan_follows_imagefolder_order(folder):
    from torchvision.datasets import ImageFolder

    reference = ImageFolder(str(folder.root))
    assert folder.classes == reference.classes == ["cat", "dog", "frog"]
    assert folder.samples == reference.samples


def test_fixed_poisoning_relabels_and_triggers_only_planned_samples(folder):
    mask = index_mask(np.array([5, 9]), len(folder))
    poisoning = Poisoning(attack=white_patch(), targeting=to(0), fixed_mask=mask)
    dataset = PoisonedImageFolder(folder.samples, 16, poisoning=poisoning)
    for index in range(len(dataset)):
        image, label, true_label = dataset[index]
        corner = image[:, 12:, 12:]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        if index in (5, 9):
            assert label == 0 and true_label == folder.samples[index][1]
            assert (corner == 1).all()
        else:
            assert label == true_label
            assert not (corner == 1).all()


def test_poison_first_applies_trigger_before_transforms(folder):
    """A flip after the trigger moves the patch to the bottom-left; with poison_first=False it stays right."""
    mask = np.ones(len(folder), dtype=bool)
    flip = T.RandomHorizontalFlip(p=1.0)
    first = PoisonedImageFolder(
        folder.samples, 16, Poisoning(white_patch(), to(0), poison_first=True, fixed_mask=mask), transform=flip
    )
    late = PoisonedImageFolder(
        folder.samples, 16, Poisoning(white_patch(), to(0), poison_first=False, fixed_mask=mask), transform=flip
    )
    image_first, *_ = first[0]
    image_late, *_ = late[0]
    assert (image_first[:, 12:, :4] == 1).all()
    assert (image_late[:, 12:, 12:] == 1).all()
    clean = torch.from_numpy(read_rgb(folder.samples[0][0], 16)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(image_late[:, :12], clean.flip(-1)[:, :12])


def test_uint8_output_has_same_pixels_as_training_view(folder):
    attack = BlendedBackdoor(16, blend_ratio=0.3)
    mask = np.ones(len(folder), dtype=bool)
    for poison_first in (True, False):
        poisoning = Poisoning(attack, to(0), poison_first=poison_first, fixed_mask=mask)
        as_float, *_ = PoisonedImageFolder(folder.samples, 16, poisoning)[3]
        as_uint8 = PoisonedImageFolder(folder.samples, 16, poisoning, output="uint8").load(3).image
        assert as_uint8.dtype == np.uint8
        assert np.abs(as_float.permute(1, 2, 0).numpy() * 255 - as_uint8).max() <= 0.5 + 1e-4


def test_random_poisoning_rates_and_target_class(folder):
    labels = [label for _, label in folder.samples]
    never = PoisonedImageFolder(folder.samples, 16, Poisoning(white_patch(), to(1), random_rate=0.0))
    always = PoisonedImageFolder(folder.samples, 16, Poisoning(white_patch(), to(1), random_rate=1.0))
    with_target = PoisonedImageFolder(
        folder.samples, 16, Poisoning(white_patch(), to(1, poison_target_class=True), random_rate=1.0)
    )
    for index, true_label in enumerate(labels):
        assert not never.load(index).poisoned
        assert always.load(index).poisoned == (true_label != 1)  # target-class images never drawn
        assert with_target.load(index).poisoned
    torch.manual_seed(0)
    half = PoisonedImageFolder(folder.samples, 16, Poisoning(white_patch(), to(1), random_rate=0.5))
    draws = [half.load(i % len(folder)).poisoned for i in range(400) if labels[i % len(folder)] != 1]
    assert 0.35 < np.mean(draws) < 0.65


def test_triggered_test_set_excludes_target_class(folder):
    test = triggered_test_set(folder.samples, 16, white_patch(), to(1), poison_first=False)
    assert len(test) == 8
    for index in range(len(test)):
        image, label, true_label = test[index]
        assert label == 1 and true_label != 1
        assert (image[:, 12:, 12:] == 1).all()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK", "LA", "1"])
def test_any_image_mode_becomes_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    if mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
        assert image.mode == "I;16"
    else:
        image = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"img.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    out = read_rgb(path, size=8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    if mode == "I;16":
        np.testing.assert_array_equal(read_rgb(path)[..., 0], rgb[..., 0])  # 16-bit scaled, not clipped


def test_unreadable_image_names_its_path(tmp_path):
    bad = tmp_path / "cls" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(UserError, match=r"broken\.jpg"):
        read_rgb(bad)
    dataset = PoisonedImageFolder([(str(bad), 0)], 8)
    with pytest.raises(UserError, match="cannot read image"):
        dataset[0]


def test_uint8_transport_matches_the_float_path(folder):
    """Flips/crops on uint8 then ÷255 on the device equal the reference's float pipeline."""
    from datasets.transforms import build_transform, runs_on_uint8

    spec = {"RandomHorizontalFlip": {"p": 1.0}, "CenterCrop": {"size": 12}}
    assert runs_on_uint8(spec)
    mask = np.ones(len(folder), dtype=bool)
    poisoning = Poisoning(white_patch(), to(0), fixed_mask=mask)
    as_float = PoisonedImageFolder(folder.samples, 16, poisoning, transform=build_transform(spec))
    as_uint8 = PoisonedImageFolder(folder.samples, 16, poisoning, transform=build_transform(spec), output="uint8_chw")
    for index in (0, 7):
        expected, label, _ = as_float[index]
        image, label8, _ = as_uint8[index]
        assert image.dtype == torch.uint8 and label8 == label
        torch.testing.assert_close(image.float() / 255, expected)


def test_which_transforms_keep_uint8():
    from datasets.transforms import runs_on_uint8

    assert runs_on_uint8(None) and runs_on_uint8(
        {"RandomResizedCrop": {"size": 24}, "ColorJitter": {"brightness": 0.2}}
    )
    assert not runs_on_uint8({"Normalize": {"mean": [0.5] * 3, "std": [0.5] * 3}})
    assert not runs_on_uint8({"RandomSolarize": {"threshold": 0.5}})  # threshold is in pixel units
    assert not runs_on_uint8({"Pad": {"padding": 2, "fill": 0.5}})
    with pytest.raises(ValueError, match="poison_first"):
        PoisonedImageFolder([], 8, Poisoning(white_patch(), to(0), poison_first=False), output="uint8_chw")


def backdoor_block(**options):
    from datasets.sections import BackdoorSection

    return BackdoorSection.model_validate(
        {"target_idx": 0, "PatchBackdoor": {"trigger_type": "white", "trigger_size": 4}} | options
    )


def test_clean_label_poisons_target_class_images_and_keeps_labels(folder):
    from datasets.build import attack_from, build_poisoning
    from datasets.previews import trigger_preview

    backdoor = backdoor_block(poisoning_rate=0.5, clean_label=True)
    poisoning = build_poisoning(backdoor, attack_from(backdoor), folder, seed=0)
    dataset = PoisonedImageFolder(folder.samples, 16, poisoning)
    poisoned = [i for i in range(len(dataset)) if dataset.load(i).poisoned]
    assert len(poisoned) == 2 and all(folder.samples[i][1] == 0 for i in poisoned)  # ceil(0.5 · 4 cats)
    for index in range(len(dataset)):
        image, label, true_label = dataset[index]
        assert label == true_label  # no label ever changes
        assert (image[:, 12:, 12:] == 1).all() == (index in poisoned)
    preview = trigger_preview(dataset, np.array(poisoned), folder.classes)  # samples.png: target-class images
    # rows of 96-pixel tiles 4 pixels apart (the 16-pixel images 6× enlarged), after the row names: the rows' tiles
    # differ only where the 4-pixel patch lies, the last 24 pixels of each tile, white in the triggered row
    tiles = preview.shape[1] - len(poisoned) * 100
    clean, triggered = preview[4:100, tiles:], preview[104:200, tiles:]
    rows, columns = np.nonzero((clean != triggered).any(axis=2))
    assert rows.min() >= 72 and (triggered[rows, columns] == 255).all()
    test = triggered_test_set(folder.samples, 16, white_patch(), backdoor.targeting(3), poison_first=True)
    assert len(test) == 8 and {test[i][1] for i in range(8)} == {0}  # scored like all-to-one


def test_all_to_all_relabels_to_the_next_class_and_tests_every_image(folder):
    from datasets.build import attack_from, build_poisoning

    backdoor = backdoor_block(poisoning_rate=1.0, target_type="all_to_all")
    poisoning = build_poisoning(backdoor, attack_from(backdoor), folder, seed=0)
    dataset = PoisonedImageFolder(folder.samples, 16, poisoning)
    for index in range(len(dataset)):
        image, label, true_label = dataset[index]
        assert label == (true_label + 1) % 3 and (image[:, 12:, 12:] == 1).all()
    test = triggered_test_set(folder.samples, 16, white_patch(), backdoor.targeting(3), poison_first=False)
    assert len(test) == 12
    assert [test[i][1:] for i in range(12)] == [((label + 1) % 3, label) for _, label in folder.samples]


def test_wanet_cross_samples_keep_their_label_and_draw_noise_per_fetch_or_once(folder):
    from datasets.build import attack_from, build_poisoning, cross_sample_indices, poisoned_indices

    backdoor = backdoor_block(poisoning_rate=0.25, PatchBackdoor=None, WaNetBackdoor={"image_size": 16})
    attack = attack_from(backdoor)
    training = build_poisoning(backdoor, attack, folder, seed=4)
    single_pass = build_poisoning(backdoor, attack, folder, seed=4, single_pass=True)
    poisoned, cross = poisoned_indices(training), cross_sample_indices(training)
    assert len(poisoned) == 2 and len(cross) == 4 and not set(poisoned) & set(cross)
    np.testing.assert_array_equal(cross, cross_sample_indices(single_pass))
    index = int(cross[0])
    clean = read_rgb(folder.samples[index][0], 16)
    torch.manual_seed(0)
    dataset = PoisonedImageFolder(folder.samples, 16, training, output="uint8")
    first, second = dataset.load(index), dataset.load(index)
    assert first.cross and not first.poisoned and first.label == first.true_label
    assert not np.array_equal(first.image, second.image)  # training: fresh noise at every fetch
    assert not np.array_equal(first.image, clean) and not np.array_equal(first.image, attack(clean))
    once = PoisonedImageFolder(folder.samples, 16, single_pass, output="uint8")
    np.testing.assert_array_equal(once.load(index).image, once.load(index).image)  # variations: one draw
    np.testing.assert_array_equal(once.load(index).image, attack.cross(clean, single_pass.cross.generator(index)))
    assert single_pass.cross.generator(index).initial_seed() != single_pass.cross.generator(index + 1).initial_seed()
    random = build_poisoning(backdoor.model_copy(update={"random_poisoning": True}), attack, folder, seed=4)
    assert random.cross.mask is None and random.cross.rate == 0.5  # cross_ratio · rate per fetch
    assert cross_sample_indices(random).tolist() == []


def find_block(picture: np.ndarray, block: np.ndarray) -> list[tuple[int, int]]:
    """Top-left corners (y, x) where the grey ``block`` appears exactly in every channel of ``picture``."""
    h, w = block.shape
    windows = np.lib.stride_tricks.sliding_window_view(picture, (h, w), axis=(0, 1))  # (Y, X, 3, h, w)
    hits = (windows == block).all(axis=(2, 3, 4))
    return [(int(y), int(x)) for y, x in np.argwhere(hits)]


def test_samples_picture_is_labelled_and_large_enough_to_show_a_3_pixel_trigger(folder):
    """samples.png was 16-pixel tiles without a word (274 × 70 px for CIFAR-10): a 3-pixel trigger did not show."""
    from datasets.previews import preview_tile_size, trigger_preview

    chosen = [4, 8, 9]  # a dog and two frogs
    poisoning = Poisoning(PatchBackdoor("checkerboard", 3), to(0), fixed_mask=index_mask(np.array(chosen), 12))
    dataset = PoisonedImageFolder(folder.samples, 16, poisoning)
    preview = trigger_preview(dataset, np.array(chosen), folder.classes)
    assert preview_tile_size(16) == 96 and preview_tile_size(32) == 96 and preview_tile_size(224) == 224
    assert preview.shape[0] >= 2 * 96 and preview.shape[1] >= 3 * 96

    # the checkerboard, each of its pixels a 6 × 6 square, in the bottom-right corner of every triggered tile
    square = np.kron(np.indices((3, 3)).sum(axis=0) % 2 * 255, np.ones((6, 6), dtype=int))
    found = find_block(preview, square)
    assert len(found) == 3 and len({y for y, _ in found}) == 1  # one per image, all in one row
    bottom = found[0][0] + 18  # the triggered tiles' lower edge
    first_tile = min(x for _, x in found) + 18 - 96
    ink = (preview < 100).all(axis=2)  # dark text on white paper
    step = 96 + 4  # tile and padding
    assert ink[bottom - 96 - step : bottom - step, :first_tile].any()  # "clean", left of the clean row
    assert ink[bottom - 96 : bottom, :first_tile].any()  # "triggered", left of its row
    for _, x in found:  # each column's class name under it
        assert ink[bottom:, x + 18 - 96 : x + 18].any()
