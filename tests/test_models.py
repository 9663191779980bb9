"""The classifier factory and checkpoints."""

from pathlib import Path

import pytest
import torch
import torchvision

from models.checkpoint import read_metadata, save_checkpoint
from models.classifier_factory import (
    REFERENCE_ALIASES,
    ClassifierRecord,
    ModelSpec,
    build_classifier,
    classifier_from_checkpoint,
    classifier_metadata,
    resolve_architecture,
    split_outputs,
)
from training.objectives import SupervisedObjective
from utils.errors import UserError


@pytest.mark.parametrize(
    ("name", "library", "model_name"),
    [
        ("resnet18", "torchvision", "resnet18"),
        ("ResNet-50", "torchvision", "resnet50"),
        ("resnext101", "torchvision", "resnext101_32x8d"),
        ("inceptionv3", "torchvision", "inception_v3"),
        ("densenet169", "torchvision", "densenet169"),
        ("resnest50", "timm", "resnest50d"),
        ("vitb16", "timm", "vit_base_patch16_224"),
        ("vit_small_patch16_224", "timm", "vit_small_patch16_224"),
        ("timm/resnet18", "timm", "resnet18"),
        ("convnext_tiny", "torchvision", "convnext_tiny"),
    ],
)
def test_names_resolve(name, library, model_name):
    spec = resolve_architecture(name)
    assert (spec.library, spec.name) == (library, model_name)


def test_every_reference_alias_resolves_to_an_existing_model():
    import timm
    import torchvision.models as tv_models

    for alias, (library, name) in REFERENCE_ALIASES.items():
        assert resolve_architecture(alias) == ModelSpec(library, name)
        exists = timm.is_model(name) if library == "timm" else name in tv_models.list_models(module=tv_models)
        assert exists, f"{alias} points to {library} '{name}', which does not exist"


def test_an_alias_to_a_missing_model_is_refused(monkeypatch):
    monkeypatch.setitem(REFERENCE_ALIASES, "resnest50", ("timm", "resnest50_no_such_variant"))
    with pytest.raises(ValueError, match="points to timm 'resnest50_no_such_variant', which timm lacks"):
        resolve_architecture("resnest50")
    monkeypatch.setitem(REFERENCE_ALIASES, "resnet18", ("torchvision", "resnet18x"))
    with pytest.raises(ValueError, match="which torchvision lacks"):
        resolve_architecture("ResNet-18")


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UserError, match=r"model.architecture: unknown architecture 'resnet19'; did you mean"):
        build_classifier("resnet19", 3)


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "test_resnet", "test_vit"])
def test_head_has_num_classes(name):
    model = build_classifier(name, 7).eval()
    size = 32 if name != "test_vit" else 160
    with torch.no_grad():
        out = model(torch.rand(2, 3, size, size))
    assert out.shape == (2, 7)


def test_inception_aux_logits_enter_the_loss():
    model = build_classifier("inceptionv3", 4).train()
    outputs = model(torch.rand(2, 3, 299, 299))  # the aux head needs the 299-pixel input
    logits, aux = split_outputs(outputs)
    assert logits.shape == aux.shape == (2, 4)
    labels = torch.tensor([0, 3])
    plain = torch.nn.functional.cross_entropy(logits, labels)
    total = SupervisedObjective(aux_weight=0.5)(outputs, None, labels)
    torch.testing.assert_close(total, plain + 0.5 * torch.nn.functional.cross_entropy(aux, labels))


def test_normalisation_lives_in_the_model():
    backbone_input = {}
    model = build_classifier("test_resnet", 3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    model.backbone.register_forward_pre_hook(lambda _, args: backbone_input.setdefault("x", args[0]))
    model.eval()(torch.full((1, 3, 16, 16), 0.75))
    torch.testing.assert_close(backbone_input["x"], torch.ones(1, 3, 16, 16))


def test_pretrained_goes_through_torchvision_cache(tmp_path, monkeypatch):
    """ImageNet weights from the torch hub cache; the new 5-class head keeps its own initialisation."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    imagenet = torchvision.models.resnet18(num_classes=1000)
    cache = tmp_path / "hub" / "checkpoints" / Path(weights.url).name
    cache.parent.mkdir(parents=True)
    torch.save(imagenet.state_dict(), cache)
    model = build_classifier("resnet18", 5, pretrained=True)
    torch.testing.assert_close(model.backbone.conv1.weight, imagenet.conv1.weight)
    assert model.backbone.fc.out_features == 5


def test_pretrained_offline_without_cache_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"model.pretrained: cannot load pretrained weights .* set model.pretrained"):
        build_classifier("resnet18", 3, pretrained=True)


def test_checkpoint_round_trip(tmp_path):
    model = build_classifier("test_resnet", 3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4)).eval()
    record = ClassifierRecord(
        architecture="test_resnet",
        num_classes=3,
        class_names=["a", "b", "c"],
        image_size=16,
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.3, 0.4),
    )
    metadata = classifier_metadata(record)
    path = save_checkpoint(tmp_path / "model.safetensors", model, metadata)
    assert not [p for p in tmp_path.iterdir() if p.name != "model.safetensors"]  # no temp file left
    restored, meta = classifier_from_checkpoint(path)
    assert meta["class_names"] == ["a", "b", "c"] and meta["image_size"] == 16 and meta["library"] == "timm"
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x))
    torch.testing.assert_close(restored.mean.flatten(), torch.tensor([0.4, 0.5, 0.6]))


def test_checkpoint_of_compiled_wrapper_has_plain_keys(tmp_path):
    model = build_classifier("test_resnet", 3)
    wrapped = torch.nn.parallel.DataParallel(model)  # has .module, like DDP
    record = ClassifierRecord(
        architecture="test_resnet", num_classes=3, class_names=list("abc"), image_size=16, mean=(0,) * 3, std=(1,) * 3
    )
    path = save_checkpoint(tmp_path / "m.safetensors", wrapped, classifier_metadata(record))
    restored, _ = classifier_from_checkpoint(path)
    assert set(restored.state_dict()) == set(model.state_dict())


def test_foreign_files_are_refused(tmp_path):
    bogus = tmp_path / "model.safetensors"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a readable safetensors checkpoint"):
        read_metadata(bogus)


def test_pretrained_inception_keeps_its_input_shift_after_reloading(tmp_path):
    """transform_input depends on `pretrained`; the checkpoint records it so the reloaded model is the same."""
    model = build_classifier("inceptionv3", 3, transform_input=True).eval()
    assert model.backbone.transform_input
    record = ClassifierRecord(
        architecture="inceptionv3",
        num_classes=3,
        class_names=list("abc"),
        image_size=299,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        pretrained=True,
    )
    metadata = classifier_metadata(record)
    restored, _ = classifier_from_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model, metadata))
    assert restored.backbone.transform_input
    x = torch.rand(1, 3, 299, 299)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x))


# ------------------------------------------------------------------------------------------ CIFAR ResNets
@pytest.mark.parametrize(
    ("name", "model_name"),
    [
        ("resnet20", "resnet20"),
        ("ResNet-20", "resnet20"),
        ("cifar/resnet56", "resnet56"),
        ("resnet110", "resnet110"),
        ("preact_resnet18", "preact_resnet18"),
        ("preactresnet18", "preact_resnet18"),  # BackdoorBench's name
        ("PreAct-ResNet18", "preact_resnet18"),
    ],
)
def test_cifar_names_resolve(name, model_name):
    assert resolve_architecture(name) == ModelSpec("cifar", model_name)


def test_cifar_names_do_not_shadow_library_models():
    assert resolve_architecture("resnet18") == ModelSpec("torchvision", "resnet18")  # the ImageNet-stem one
    with pytest.raises(ValueError, match="'resnet18' is not a cifar classification model"):
        resolve_architecture("cifar/resnet18")


def test_unknown_name_lists_the_cifar_models():
    with pytest.raises(UserError, match=r"a CIFAR ResNet for 32-px images \(resnet20, resnet32, .*preact_resnet18\)"):
        build_classifier("no_such_net", 10)


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_cifar_parameter_counts():
    """Counted by hand (3×3 convolutions without bias, BN = 2 per channel, head = 10·width + 10).

    ResNet-20: stem 3·16·9 + 32 = 464; stage 1: 3 blocks × 2 × (16·16·9 + 32) = 14,016; stage 2: (16·32·9 + 64)
    + (32·32·9 + 64) + 2 × 2 × (9,216 + 64) = 51,072; stage 3 likewise at 32→64: 55,552 + 147,968 = 203,520;
    head 650; option-A shortcuts add nothing: 269,722 (He et al.: 0.27 M). ResNet-56 (9 blocks a stage): 853,018
    (He et al.: 0.85 M). PreAct-ResNet18: stem 1,728; stage 1: 2 × (128 + 36,864) × 2 = 147,968; stage 2:
    (128 + 73,728 + 256 + 147,456 + 8,192 for the 1×1 projection) + 2 × (256 + 147,456) = 525,184; stage 3:
    918,272 + 1,180,672 = 2,098,944; stage 4: 3,671,552 + 4,720,640 = 8,392,192; head 5,130: 11,171,146.
    """
    assert parameter_count(build_classifier("resnet20", 10)) == 269_722
    assert parameter_count(build_classifier("resnet56", 10)) == 853_018
    assert parameter_count(build_classifier("preact_resnet18", 10)) == 11_171_146


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        # a 3×3 stride-1 stem keeps 32×32; each later stage halves the side
        ("resnet20", [(16, 32), (16, 32), (32, 16), (64, 8)]),
        ("preact_resnet18", [(64, 32), (64, 32), (128, 16), (256, 8), (512, 4)]),
    ],
)
def test_cifar_stem_and_feature_map_sizes_at_32_px(name, sizes):
    backbone = build_classifier(name, 10).backbone.eval()
    shapes = []
    for module in (backbone.stem, *backbone.stages):
        module.register_forward_hook(lambda _, __, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        logits = backbone(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert shapes == [(2, channels, side, side) for channels, side in sizes]


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    from models.cifar_resnets import ZeroPadShortcut

    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    out = ZeroPadShortcut(2, 5, stride=2)(x)
    assert out.shape == (1, 5, 2, 2)
    assert out[0, 0].tolist() == [[0, 2], [8, 10]] and out[0, 1].tolist() == [[16, 18], [24, 26]]
    assert not out[0, 2:].any()


def test_cifar_models_have_no_pretrained_weights():
    from models.sections import ModelSection

    with pytest.raises(UserError, match=r"model\.pretrained: there are no pretrained weights for 'resnet20'"):
        build_classifier("resnet20", 10, pretrained=True)
    with pytest.raises(ValueError, match="pretrained: there are no pretrained weights for 'PreActResNet18'"):
        ModelSection(architecture="PreActResNet18", pretrained=True)


def test_cifar_checkpoint_round_trip(tmp_path):
    model = build_classifier("ResNet-20", 10).eval()
    record = ClassifierRecord(
        architecture="ResNet-20",
        num_classes=10,
        class_names=list("abcdefghij"),
        image_size=32,
        mean=(0,) * 3,
        std=(1,) * 3,
    )
    restored, meta = classifier_from_checkpoint(
        save_checkpoint(tmp_path / "m.safetensors", model, classifier_metadata(record))
    )
    assert (meta["library"], meta["model_name"]) == ("cifar", "resnet20")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x))
