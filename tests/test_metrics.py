"""Paired metrics on [-1, 1] images: known answers, one value per image."""

from __future__ import annotations

import math

import pytest
import torch

from translate.evaluation.image_metrics import l1, psnr, ssim


@pytest.fixture
def real() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(3, 3, 32, 32) * 1.6 - 0.8


def test_identical_images(real):
    assert torch.equal(l1(real, real), torch.zeros(3))
    assert torch.isinf(psnr(real, real)).all() and (psnr(real, real) > 0).all()
    assert torch.allclose(ssim(real, real), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("offset", [0.05, 0.2])
def test_constant_offset_has_closed_form_l1_and_psnr(real, offset):
    fake = real + offset
    assert torch.allclose(l1(fake, real), torch.full((3,), offset), atol=1e-5)
    expected = 10 * math.log10(2.0**2 / offset**2)  # data range of [-1, 1] images is 2
    assert torch.allclose(psnr(fake, real), torch.full((3,), expected), atol=1e-3)


def test_opposite_extremes_give_zero_db():
    fake, real = -torch.ones(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert l1(fake, real).item() == 2.0 and psnr(fake, real).item() == 0.0


@pytest.mark.parametrize("fake, real, expected", [(0.0, 1.0, 0.8), (-0.5, 0.5, 0.6), (-1.0, 1.0, 0.0)])
def test_ssim_of_constant_images_is_the_closed_form(fake, real, expected):
    """Flat images have no variance, so SSIM is its luminance term alone: (2 x y + C1) / (x^2 + y^2 + C1) with
    x, y the levels in [0, 1] and C1 = 0.01^2; e.g. 0.5 against 1: 1 / 1.25."""
    x, y = torch.full((1, 3, 16, 16), fake), torch.full((1, 3, 16, 16), real)
    assert ssim(x, y).item() == pytest.approx(expected, abs=1e-3)


def test_ssim_decreases_with_noise(real):
    torch.manual_seed(1)
    noise = torch.randn_like(real)
    scores = [ssim((real + s * noise).clamp(-1, 1), real).mean().item() for s in (0.02, 0.1, 0.3)]
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_values_are_per_image(real):
    fake = real.clone()
    fake[1] = -fake[1]
    for metric, same in ((l1, 0.0), (psnr, math.inf), (ssim, 1.0)):
        values = metric(fake, real)
        assert values.shape == (3,)
        assert values[0].item() == pytest.approx(same, abs=1e-5) and values[2].item() == pytest.approx(same, abs=1e-5)
        assert values[1].item() != pytest.approx(same, abs=1e-2)


def test_mismatched_shapes_are_rejected(real):
    for metric in (l1, psnr, ssim):
        with pytest.raises(ValueError, match=r"same shape, got \(3, 3, 32, 32\) and \(3, 1, 32, 32\)"):
            metric(real, real[:, :1])
