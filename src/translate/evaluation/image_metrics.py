"""Image metrics.

- Paired (L1, PSNR, SSIM) on batches in [-1, 1], one value per image: per-image values let callers
  average over a whole split, whatever the batch size.
- Distributions: the Frechet distance between Gaussians fitted to features (FID and its relatives), the
  mean pairwise distance of a set of images (diversity), and the uint8 quantisation they all start from.
- Artifacts: the checkerboard energy of an image, the share of its spectrum at the period of a stride-2
  upsampling.
- Which direction is better for each metric name (for keeping the best checkpoint).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

# Images in [-1, 1] span a range of 2.
DATA_RANGE = 2.0


def _check_pair(fake: torch.Tensor, real: torch.Tensor) -> None:
    if fake.dim() != 4 or fake.shape != real.shape:
        raise ValueError(f"paired metrics need two [N, C, H, W] batches of the same shape, got {tuple(fake.shape)} and {tuple(real.shape)}")


def _difference(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    _check_pair(fake, real)
    return (fake.float() - real.float()).flatten(1)


def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: ``[N, C, H, W] x 2 -> [N]``."""
    return _difference(fake, real).abs().mean(1)


def psnr(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, data range 2: ``[N, C, H, W] x 2 -> [N]``; +inf when equal."""
    mse = _difference(fake, real).square().mean(1)
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def ssim(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Gaussian 11x11 window, on images rescaled to [0, 1]):
    ``[N, C, H, W] x 2 -> [N]``; 1 when equal."""
    _check_pair(fake, real)
    values = structural_similarity_index_measure((fake.float() + 1) / 2, (real.float() + 1) / 2, data_range=1.0, reduction="none")
    assert isinstance(values, torch.Tensor)  # a pair comes back only when asked for the full SSIM map
    return values


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8, rounded, exactly as the PNG files are written: ``[N, C, H, W] -> [N, C, H, W]``.

    Every distribution metric passes real and generated images through this one function, so both sides
    are quantised the same way."""
    return (((images.detach().float() + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def gaussian_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of features ``[N, D]``, in float64 (N >= 2)."""
    if features.dim() != 2 or features.size(0) < 2:
        raise ValueError(f"Gaussian statistics need features [N, D] with N >= 2, got {tuple(features.shape)}")
    features = features.double()
    return features.mean(0), torch.cov(features.T).reshape(features.size(1), features.size(1))


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0.0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (``[D]``, ``[D, D]`` each):
    ``|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, the FID of Heusel et al. (2017)."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.numel(), mu1.numel()):
        raise ValueError(
            f"Frechet distance needs means [D] and covariances [D, D] of one D, got {tuple(mu1.shape)}, "
            f"{tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}"
        )
    # Tr((S1 S2)^(1/2)) = Tr((S1^(1/2) S2 S1^(1/2))^(1/2)): the latter is symmetric positive semi-definite,
    # so its eigenvalues are real and non-negative up to rounding, unlike those of the product S1 S2.
    root1 = _psd_sqrt(sigma1)
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp(min=0.0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2.0 * cross)


def feature_frechet_distance(features1: torch.Tensor, features2: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two sets of features ``[N1, D]`` and ``[N2, D]``."""
    return frechet_distance(*gaussian_statistics(features1), *gaussian_statistics(features2))


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean over all pairs of the root-mean-square pixel difference, for uint8 images ``[N, C, H, W]``
    (N >= 2) seen in [0, 1]: 0 when all are equal; it drops when a generator collapses."""
    if images.dim() != 4 or images.size(0) < 2:
        raise ValueError(f"mean pairwise distance needs images [N, C, H, W] with N >= 2, got {tuple(images.shape)}")
    flat = images.flatten(1).double() / 255.0
    distances = torch.cdist(flat, flat) / flat.size(1) ** 0.5
    n = flat.size(0)
    return float(distances.sum() / (n * (n - 1)))


def checkerboard_energy(images: torch.Tensor) -> torch.Tensor:
    """The share of each image's spectral power at period 2, where stride-2 transposed convolutions put their
    checkerboard (Odena et al. 2016): ``[N, C, H, W] -> [N]`` in [0, 1], H and W even, any value range.

    The power spectrum of each channel, its mean removed, summed over channels; the energy is its value at the
    three frequencies of period 2 (vertical stripes ``(0, W/2)``, horizontal ``(H/2, 0)``, the checkerboard
    ``(H/2, W/2)``) over its total. A pattern alternating pixel by pixel gives 1; a smooth image almost 0;
    a flat image 0. Compare a generator's value with that of the real images of its task."""
    if images.dim() != 4 or images.shape[-2] % 2 or images.shape[-1] % 2:
        raise ValueError(f"checkerboard energy needs images [N, C, H, W] with even H and W, got {tuple(images.shape)}")
    x = images.double()
    power = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs().square().sum(1)
    h, w = power.shape[-2] // 2, power.shape[-1] // 2
    peak = power[:, 0, w] + power[:, h, 0] + power[:, h, w]
    total = power.flatten(1).sum(1)
    return torch.where(total > 0, peak / total.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(total))


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """The Inception Score (Salimans et al. 2016) of class logits ``[N, K]``: exp(E_x KL(p(y|x) || p(y))) on
    each of ``splits`` chunks of a fixed shuffle (images often come sorted by class), as (mean, std) over the
    chunks. 1 for images the classifier cannot tell apart, K for confident predictions spread evenly over K
    classes. Applied to Inception's logits it is the usual IS; to a digit classifier's, its MNIST analogue."""
    order = torch.randperm(len(logits), generator=torch.Generator().manual_seed(0))
    log_p = logits.double()[order].log_softmax(dim=1)
    scores = []
    for chunk in log_p.chunk(splits):
        log_marginal = chunk.exp().mean(dim=0).log()
        scores.append(float((chunk.exp() * (chunk - log_marginal)).sum(dim=1).mean().exp()))
    values = torch.tensor(scores, dtype=torch.float64)
    return float(values.mean()), float(values.std(unbiased=False))


#: Whether a larger value is better, by metric name (``val/`` stripped); ``best.pt`` follows it unless
#: ``trainer.best_mode`` says otherwise. Names not listed start with one of these (e.g. ``FID_A``).
HIGHER_IS_BETTER = {
    "L1": False,
    "cycle_L1": False,
    "FID": False,
    "KID": False,
    "fid_mnist_classifier": False,
    "PSNR": True,
    "SSIM": True,
    "accuracy": True,
    "tstr_accuracy": True,
    "diversity": True,
    "IS": True,
    "is_mnist_classifier": True,
}


def higher_is_better(name: str) -> bool | None:
    """Whether a larger ``name`` (a metric, with or without ``val/``) is better; None when unknown."""
    key = name.removeprefix("val/")
    matches = [prefix for prefix in HIGHER_IS_BETTER if key == prefix or key.startswith(prefix + "_")]
    return HIGHER_IS_BETTER[max(matches, key=len)] if matches else None
