"""Colour transfer maths: per-channel statistics in RGB (reference) and in Lab (Reinhard)."""

import pytest
import torch
from kornia.color import rgb_to_lab

from variations.color_transfer import transfer_colors


def stats(images):
    return images.mean((2, 3)), images.std((2, 3), correction=0)


def test_mean_std_matches_source_statistics_per_channel():
    torch.manual_seed(0)
    variations = torch.rand(3, 3, 24, 24) * 0.6 + 0.2
    sources = torch.rand(3, 3, 8, 8) * 0.3 + 0.35  # other size: only statistics are compared
    out = transfer_colors(variations, sources, "mean_std")
    mean_out, std_out = stats(out)
    mean_src, std_src = stats(sources)
    torch.testing.assert_close(mean_out, mean_src, atol=1e-5, rtol=0)
    torch.testing.assert_close(std_out, std_src, atol=1e-5, rtol=0)
    # by hand for one channel: (x − μ_v) · σ_s / σ_v + μ_s
    v = variations[1, 2]
    expected = (v - v.mean()) * sources[1, 2].std(correction=0) / v.std(correction=0) + sources[1, 2].mean()
    torch.testing.assert_close(out[1, 2], expected.clamp(0, 1))


def test_mean_std_clips_to_valid_range():
    variations = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(1, 3, 1, 1)
    sources = torch.cat([torch.zeros(1, 3, 4, 2), torch.ones(1, 3, 4, 2)], dim=3)  # mean 0.5, std 0.5
    out = transfer_colors(variations, sources, "mean_std")
    assert out.min() == 0 and out.max() == 1


def test_lab_matches_statistics_in_lab_space():
    torch.manual_seed(1)
    variations = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    sources = torch.rand(2, 3, 16, 16) * 0.4 + 0.3
    out = transfer_colors(variations, sources, "lab")
    assert out.shape == variations.shape and out.min() >= 0 and out.max() <= 1
    mean_out, std_out = stats(rgb_to_lab(out))
    mean_src, std_src = stats(rgb_to_lab(sources))
    torch.testing.assert_close(mean_out, mean_src, atol=0.3, rtol=0.02)  # Lab units; gamut clipping aside
    torch.testing.assert_close(std_out, std_src, atol=0.3, rtol=0.05)


@pytest.mark.parametrize("mode", ["mean_std", "lab"])
def test_zero_variance_channels_give_no_nan(mode):
    flat = torch.full((2, 3, 8, 8), 0.4)
    sources = torch.rand(2, 3, 8, 8)
    out = transfer_colors(flat, sources, mode)
    assert not torch.isnan(out).any()
    flat_source = transfer_colors(torch.rand(2, 3, 8, 8), torch.full((2, 3, 4, 4), 0.7), mode)
    assert not torch.isnan(flat_source).any()
    if mode == "mean_std":
        torch.testing.assert_close(out.mean((2, 3)), sources.mean((2, 3)))
        torch.testing.assert_close(flat_source, torch.full_like(flat_source, 0.7))


def test_none_is_identity_and_unknown_mode_fails():
    images = torch.rand(1, 3, 4, 4)
    assert transfer_colors(images, images, "none") is images
    with pytest.raises(ValueError, match="mean_std"):
        transfer_colors(images, images, "histogram")
