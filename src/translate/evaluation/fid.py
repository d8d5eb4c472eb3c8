"""FID and KID of generated images against real ones, on the Inception-v3 features that the FID paper uses.

torch-fidelity (the optional extra: ``pip install "translate[metrics]"``) provides that network (the
TensorFlow graph of 2015-12-05, converted to PyTorch) and KID; the Frechet distance itself is
:func:`translate.evaluation.image_metrics.frechet_distance`. The weights are read from
``metrics.inception_weights`` or from torch-fidelity's own cache, where it would download them; this module
never downloads anything. When the package or the file is missing, :func:`find_inception` says exactly
what to install or which file to put where.

Images enter as uint8 (:func:`translate.evaluation.image_metrics.to_uint8`, the values of the PNGs written), grey ones as
three equal channels; torch-fidelity resizes them to 299 x 299 as TensorFlow did.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

from translate.config import ValMetricsConfig
from translate.errors import ConfigError
from translate.evaluation.image_metrics import feature_frechet_distance, inception_score, to_uint8
from translate.files import read_weights

log = logging.getLogger(__name__)

INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[1]
INSTALL_HINT = 'pip install "translate[metrics]" (or pip install "torch-fidelity>=0.3")'

#: Maps uint8 images ``[N, 3, H, W]`` to pool features ``[N, D]`` (FID, KID) and class logits ``[N, K]`` (IS).
FeatureExtractor = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]
#: Chunks the Inception Score is averaged over (the usual 10, fewer when there are fewer images).
IS_SPLITS = 10


def inception_cache_path() -> Path:
    """Where torch-fidelity keeps the Inception weights it downloads: torch hub's checkpoint folder
    (``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


@dataclass(frozen=True)
class InceptionLookup:
    """The result of :func:`find_inception`: the weights file, or why there is none (a message that says
    what to do)."""

    path: Optional[Path] = None
    problem: Optional[str] = None
    #: ``problem`` in a few words (what is missing, where it goes), for the warning of ``metrics.fid=auto``.
    brief: Optional[str] = None


def find_inception(weights: Optional[str]) -> InceptionLookup:
    """Locate the Inception weights: the file ``weights`` (``metrics.inception_weights``) or, when None,
    torch-fidelity's cache. Checks that torch-fidelity is installed; reads nothing."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return InceptionLookup(
            problem=f"torch-fidelity is not installed; {INSTALL_HINT}", brief=f"torch-fidelity is not installed ({INSTALL_HINT})"
        )
    cache = inception_cache_path()
    if weights is not None:
        path = Path(str(weights)).expanduser()
        if path.is_file():
            return InceptionLookup(path=path)
        return InceptionLookup(
            problem=f"metrics.inception_weights={weights}: no such file; download {INCEPTION_URL} there "
            f"(e.g. curl -L -o {path} {INCEPTION_URL})"
        )
    if cache.is_file():
        return InceptionLookup(path=cache)
    home = Path.home()
    shown = f"~/{cache.parent.relative_to(home)}" if cache.parent.is_relative_to(home) else str(cache.parent)
    return InceptionLookup(
        problem=f"the Inception weights {INCEPTION_FILE} are not in torch-fidelity's cache {cache.parent}; "
        f"download {INCEPTION_URL} into that folder (e.g. mkdir -p {cache.parent} && curl -L -o {cache} "
        f"{INCEPTION_URL}) or anywhere and pass metrics.inception_weights=<file>",
        brief=f"no Inception weights {INCEPTION_FILE} in {shown}/ (put them there or pass metrics.inception_weights=<file>)",
    )


def inception_extractor(path: Path, device: torch.device) -> FeatureExtractor:
    """torch-fidelity's Inception-v3 with the weights at ``path``, returning the 2048 pool features and the
    1008 logits of its classifier (``logits_unbiased``: without the bias, as torch-fidelity's own IS).

    The file is first opened with ``weights_only=True`` (torch-fidelity's own load is not restricted),
    so a file holding anything but tensors is refused before torch-fidelity reads it."""
    # torch-fidelity is optional (the [metrics] extra): imported only when FID/KID are computed.
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    read_weights(path)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)).to(
        device
    )
    return lambda images: tuple(net(images.to(device)))


def as_rgb_uint8(images: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` in [-1, 1] with C = 1 or 3 -> uint8 ``[N, 3, H, W]``, grey repeated to RGB."""
    images = to_uint8(images)
    return images.expand(-1, 3, -1, -1) if images.size(1) == 1 else images


def kernel_inception_distance(fake: torch.Tensor, real: torch.Tensor, subset_size: int, subsets: int = 100) -> Dict[str, float]:
    """torch-fidelity's KID (unbiased MMD^2, cubic polynomial kernel) of features ``[N1, D]`` and
    ``[N2, D]``: mean and standard deviation over ``subsets`` random subsets of ``subset_size`` each
    (lowered to the smaller N when fewer features are given). Returns ``{"mean", "std", "subset_size"}``."""
    # torch-fidelity is optional (the [metrics] extra): imported only when KID is computed.
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(fake), len(real))
    out = kid_features_to_metric(fake.float().cpu(), real.float().cpu(), kid_subset_size=size, kid_subsets=subsets, verbose=False)
    return {"mean": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "subset_size": size}


class DistributionMetrics:
    """FID and KID of every ``fake_X`` visual against the ``real_X`` visuals of the same run (pix2pix:
    fake_B vs real_B; CycleGAN: fake_B vs the real test B images and fake_A vs the real test A images), and
    the Inception Score of the fakes (``IS_X``).

    Feed each batch's visuals to :meth:`update`; :meth:`compute` returns ``{"FID_X": ..., "KID_X": ..., "IS_X": ...}``
    entries in the ``{"mean", "num_images", ...}`` format of metrics.json. Features of fakes are computed
    as they come; real images are kept as uint8 and only those with a fake counterpart go through the
    network, so inputs that nothing is compared with cost nothing.
    """

    def __init__(self, extract: FeatureExtractor, kid_subset_size: int = 1000) -> None:
        self.extract = extract
        self.kid_subset_size = kid_subset_size
        self.fake: Dict[str, List[torch.Tensor]] = {}
        self.fake_logits: Dict[str, List[torch.Tensor]] = {}
        self.real: Dict[str, List[torch.Tensor]] = {}

    @torch.no_grad()
    def update(self, visuals: Dict[str, torch.Tensor]) -> None:
        for name, images in visuals.items():
            kind, _, side = name.partition("_")
            if kind == "fake":
                features, logits = self.extract(as_rgb_uint8(images))
                self.fake.setdefault(side, []).append(features.double().cpu())
                self.fake_logits.setdefault(side, []).append(logits.double().cpu())
            elif kind == "real":
                self.real.setdefault(side, []).append(as_rgb_uint8(images).cpu())

    @property
    def num_real(self) -> int:
        """The real images :meth:`compute` takes through the network: those with fakes of their domain."""
        return sum(len(batch) for side in self.fake.keys() & self.real.keys() for batch in self.real[side])

    @torch.no_grad()
    def compute(self, progress: bool = False) -> Dict[str, Dict[str, float]]:
        """The scores of the class docstring; ``progress``: a bar over the real images' batches."""
        sides = sorted(self.fake.keys() & self.real.keys())
        reals: Dict[str, torch.Tensor] = {}
        with tqdm(total=self.num_real, desc="Inception", unit="img", leave=False, disable=not progress) as bar:
            for side in sides:
                features = []
                for batch in self.real[side]:
                    features.append(self.extract(batch)[0].double().cpu())
                    bar.update(len(batch))
                reals[side] = torch.cat(features)
        out: Dict[str, Dict[str, float]] = {}
        for side in sides:
            fake, real = torch.cat(self.fake[side]), reals[side]
            if min(len(fake), len(real)) < 2:
                log.warning("FID_%s/KID_%s need at least 2 images on each side; got %d fake and %d real", side, side, len(fake), len(real))
                continue
            counts = {"num_images": len(fake), "num_real_images": len(real)}
            out[f"FID_{side}"] = {"mean": feature_frechet_distance(fake, real), **counts}
            out[f"KID_{side}"] = {**kernel_inception_distance(fake, real, self.kid_subset_size), **counts}
            splits = min(IS_SPLITS, len(fake))
            mean, std = inception_score(torch.cat(self.fake_logits[side]), splits)
            out[f"IS_{side}"] = {"mean": mean, "std": std, "splits": splits, "num_images": len(fake)}
        return out


def check_fid(cfg: ValMetricsConfig) -> Optional[InceptionLookup]:
    """Decide FID/KID from a ``metrics`` section before any work: ``cfg.fid`` false: None; true, or a
    ``cfg.inception_weights`` file named: stop at once (ConfigError) when torch-fidelity or the weights are
    missing; auto: warn at once when they are missing. Returns the lookup (its ``problem`` set when FID/KID
    will be left out)."""
    if cfg.fid is False:
        return None
    lookup = find_inception(cfg.inception_weights)
    if lookup.problem is None:
        return lookup
    if cfg.fid is True or cfg.inception_weights is not None:
        raise ConfigError(f"FID/KID: {lookup.problem} (metrics.fid=false runs without them)")
    log.warning("FID/KID skipped: %s; metrics.fid=false turns this off", lookup.brief)
    return lookup


def distribution_metrics(cfg: ValMetricsConfig, device: torch.device) -> Optional[DistributionMetrics]:
    """FID/KID as a ``metrics`` section asks (see :func:`check_fid`): None when off or when the weights
    are missing (check_fid said so, once), else a collector."""
    lookup = check_fid(cfg)
    if lookup is None or lookup.path is None:
        return None
    log.info("FID/KID/IS: loading the Inception network (%s)...", lookup.path)
    return DistributionMetrics(inception_extractor(lookup.path, device), cfg.kid_subset_size)
