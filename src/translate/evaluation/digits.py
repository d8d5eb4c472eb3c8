"""Scores of a class-conditional digit generator (the cGAN), judged by an MNIST classifier.

The judge is the classifier shipped in the package (``translate/assets/mnist_classifier.pt``, trained with
``translate-train model=classifier`` by ``scripts/train_mnist_classifier.py``), so the scores need no network
access and are comparable across runs and machines:

- ``accuracy``: the share of generated digits that the judge assigns to the class they were asked for
  (``accuracy_class_<c>`` per class); ``real`` beside it is the judge's accuracy on the real digits;
- ``fid_mnist_classifier``: the Frechet distance between Gaussians fitted to the judge's penultimate
  features of the generated digits and of real digits (``reference`` names which);
- ``is_mnist_classifier``: the Inception Score formula (Salimans et al. 2016) on the judge's class
  probabilities, high when each digit is read confidently as one class and the classes are evenly used (at
  most 10); ``real`` beside it is the same for the real digits;
- ``tstr_accuracy`` (train on synthetic, test on real): a fresh classifier of the judge's architecture is
  trained on the generated digits only, for a fixed number of steps, and tested on the real digits;
- ``diversity``: the mean pairwise RMS pixel distance (in [0, 1] units) between digits generated for the
  same class, averaged over classes (``diversity_class_<c>`` per class); ``real`` beside it is the same
  for the real digits. It drops when the generator collapses onto a few digits per class.

Real and generated digits take the same path: uint8, rounded as the PNGs are written, then resized to the
judge's 32 x 32 (antialiased bilinear, as the MNIST dataset resizes) when their side differs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF
from tqdm import tqdm

from translate.config import TestMetricsConfig, Weights
from translate.data.configs import MNISTDataConfig
from translate.data.mnist import MNISTDataset
from translate.errors import CheckpointError
from translate.evaluation.image_metrics import feature_frechet_distance, inception_score, mean_pairwise_distance, to_uint8
from translate.files import read_weights, resolve_checkpoint
from translate.models.checkpoint import Checkpoint, is_checkpoint, trained_model
from translate.models.classifier import MNISTClassifierNet

log = logging.getLogger(__name__)

#: The side of the digits the shipped classifier was trained on (data=mnist's image_size).
CLASSIFIER_SIZE = 32
SHIPPED_CLASSIFIER = "mnist_classifier.pt"
#: Digits per batch through the generator and the classifier.
BATCH = 500
#: Chunks the classifier's Inception Score is averaged over (fewer when there are fewer digits).
IS_SPLITS = 10

Metrics = Dict[str, Dict[str, Any]]


@dataclass
class Digits:
    """uint8 digits ``[N, 1, S, S]``, their classes ``[N]``, and where they come from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.labels)


def classifier_from_state_dict(state: Mapping[str, torch.Tensor], where: str) -> MNISTClassifierNet:
    """An :class:`MNISTClassifierNet` shaped after ``state`` (its block widths read from the conv weights),
    with those weights, in eval mode."""
    convs = sorted((int(m.group(1)), v) for k, v in state.items() if (m := re.fullmatch(r"body\.(\d+)\.weight", k)) and v.dim() == 4)
    if not convs or "head.weight" not in state:
        raise CheckpointError(f"{where} is not an MNIST classifier (no body.<i>.weight convolutions or head.weight)")
    net = MNISTClassifierNet(convs[0][1].shape[1], state["head.weight"].shape[0], [v.shape[0] for _, v in convs])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{where} does not fit the MNIST classifier: {str(err).splitlines()[0][:200]}") from None
    return net.eval()


def load_classifier(source: Optional[str] = None) -> MNISTClassifierNet:
    """The judge: the shipped classifier when ``source`` is None, else a classifier run directory, one of
    its checkpoints, or a plain state_dict file (all read with ``weights_only=True``)."""
    if source is None:
        with resources.files("translate.assets").joinpath(SHIPPED_CLASSIFIER).open("rb") as f:
            return classifier_from_state_dict(
                torch.load(f, map_location="cpu", weights_only=True), f"translate/assets/{SHIPPED_CLASSIFIER}"
            )
    path = resolve_checkpoint(source) if Path(source).expanduser().is_dir() else Path(source).expanduser()
    state = read_weights(path)
    if not is_checkpoint(state):
        return classifier_from_state_dict(state, str(path))
    ckpt = Checkpoint.from_state(state, path)
    if ckpt.model != "classifier":
        raise CheckpointError(f"metrics.classifier={source} holds a {ckpt.model!r} run; pass a model=classifier run or weights file")
    net = trained_model(ckpt, Weights.raw, path).netC
    assert isinstance(net, MNISTClassifierNet)
    return net


def reference_digits(data: MNISTDataConfig, split: str, limit: Optional[int] = None) -> Digits:
    """The real digits of ``split`` of the MNIST dataset ``data`` describes (its ``image_size``), the first
    ``limit`` of them (all when None; ``data.max_dataset_size`` does not apply)."""
    dataset = MNISTDataset(replace(data, max_dataset_size=limit), split, train=False)
    return Digits(dataset.images, dataset.labels, f"{data.name} {split} split")


@torch.no_grad()
def generate_digits(model: Any, per_class: int, seed: int, device: torch.device) -> Digits:
    """``per_class`` digits of each class from ``model.generate`` (noise drawn from ``seed``), as uint8."""
    classes, z_dim = model.cfg.num_classes, model.cfg.z_dim
    labels = torch.arange(classes).repeat_interleave(per_class)
    z = torch.randn(len(labels), z_dim, generator=torch.Generator().manual_seed(seed))
    images = [
        to_uint8(model.generate(z[i : i + BATCH].to(device), labels[i : i + BATCH].to(device))).cpu() for i in range(0, len(labels), BATCH)
    ]
    return Digits(torch.cat(images), labels, f"generated, seed {seed}")


def classifier_input(images: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    """uint8 digits ``[N, 1, S, S]`` -> float ``[N, 1, size, size]`` in [-1, 1] (no resize when size is None)."""
    if size is not None and images.shape[-1] != size:
        images = TF.resize(images, [size, size], antialias=True)
    return images.float() / 127.5 - 1.0


class DigitJudge:
    """A classifier's reading of uint8 digits: predicted classes ``[N]``, penultimate features ``[N, D]`` and
    class logits ``[N, K]``."""

    def __init__(self, net: MNISTClassifierNet, device: torch.device, size: Optional[int] = CLASSIFIER_SIZE) -> None:
        self.net = net.to(device).eval()
        self.device = device
        self.size = size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, features = [], []
        for i in range(0, len(images), BATCH):
            feats = self.net.features(classifier_input(images[i : i + BATCH], self.size).to(self.device))
            logits.append(self.net.head(feats).double().cpu())
            features.append(feats.double().cpu())
        logits_all = torch.cat(logits)
        return logits_all.argmax(1), torch.cat(features), logits_all


def _per_class_mean(values: torch.Tensor, labels: torch.Tensor, classes: int) -> list[float]:
    return [float(values[labels == c].float().mean()) for c in range(classes)]


def accuracy_metrics(preds: torch.Tensor, labels: torch.Tensor, classes: int, per_class: bool) -> Metrics:
    """``accuracy`` (and ``accuracy_class_<c>``) of predictions ``[N]`` for classes ``[N]``."""
    correct = preds == labels
    out: Metrics = {"accuracy": {"mean": float(correct.float().mean()), "num_images": len(labels)}}
    if per_class:
        for c, value in enumerate(_per_class_mean(correct, labels, classes)):
            out[f"accuracy_class_{c}"] = {"mean": value, "num_images": int((labels == c).sum())}
    return out


def class_diversity(digits: Digits, classes: int) -> list[float]:
    """Mean pairwise distance of the digits of each class (NaN for a class with fewer than two)."""
    return [
        mean_pairwise_distance(digits.images[digits.labels == c]) if int((digits.labels == c).sum()) >= 2 else float("nan")
        for c in range(classes)
    ]


def train_on_synthetic(
    fake: Digits,
    real: Digits,
    steps: int,
    device: torch.device,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    progress: bool = False,
) -> float:
    """TSTR: train a fresh classifier (the judge's architecture, Adam, ``lr`` decaying linearly to 0,
    no augmentation) on ``fake`` for ``steps`` steps of ``batch_size``, and return its accuracy on ``real``.
    The global random state is left as it was; ``progress``: a bar over the steps."""
    x, y = classifier_input(fake.images, CLASSIFIER_SIZE).to(device), fake.labels.to(device)
    draws = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad():
        torch.manual_seed(seed)
        net = MNISTClassifierNet().to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / steps)
        for _ in tqdm(range(steps), desc="TSTR", unit="step", leave=False, disable=not progress):
            index = torch.randint(len(y), (batch_size,), generator=draws).to(device)
            loss = F.cross_entropy(net(x[index]), y[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
    preds = DigitJudge(net, device)(real.images)[0]
    return float((preds == real.labels).float().mean())


def score_digits(
    fake: Digits,
    real: Digits,
    judge: DigitJudge,
    classes: int,
    per_class: bool = True,
    real_scores: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]] = None,
) -> Metrics:
    """The scores of the module docstring but TSTR for generated digits ``fake`` against real digits
    ``real``, in metrics.json's ``{name: {"mean", "num_images", ...}}`` format. ``real_scores`` (the
    judge's predictions, features, logits and class diversities of ``real``) saves recomputing them."""
    preds, features, logits = judge(fake.images)
    real_preds, real_features, real_logits, real_diversity = real_scores or (*judge(real.images), class_diversity(real, classes))
    out = accuracy_metrics(preds, fake.labels, classes, per_class)
    out["accuracy"]["real"] = float((real_preds == real.labels).float().mean())
    out["fid_mnist_classifier"] = {"mean": feature_frechet_distance(features, real_features), **_counts(fake, real)}
    splits = min(IS_SPLITS, len(fake))
    score, spread = inception_score(logits, splits)
    out["is_mnist_classifier"] = {
        "mean": score,
        "std": spread,
        "splits": splits,
        "num_images": len(fake),
        "real": inception_score(real_logits, min(IS_SPLITS, len(real)))[0],
    }
    diversity = class_diversity(fake, classes)
    out["diversity"] = {
        "mean": float(torch.tensor(diversity).nanmean()),
        "num_images": len(fake),
        "real": float(torch.tensor(real_diversity).nanmean()),
    }
    if per_class:
        for c, (value, real_value) in enumerate(zip(diversity, real_diversity)):
            out[f"diversity_class_{c}"] = {"mean": value, "num_images": int((fake.labels == c).sum()), "real": real_value}
    return out


def _counts(fake: Digits, real: Digits) -> Dict[str, Any]:
    """The numbers of digits a score compares, and which real ones."""
    return {"num_images": len(fake), "num_real_images": len(real), "reference": real.source}


def generator_test_metrics(
    model: Any, data: MNISTDataConfig, split: str, cfg: TestMetricsConfig, seed: int, device: torch.device, progress: bool = True
) -> Metrics:
    """translate-test's scores of a cGAN: ``cfg.cgan_per_class`` digits per class (noise from ``seed``)
    against the whole ``split`` of the run's MNIST data (the bundled subset's when the run used it),
    judged by ``cfg.classifier`` (None: the shipped classifier), with ``cfg.tstr_steps`` of TSTR training.
    ``cfg`` is translate-test's ``metrics`` section; ``cfg.cgan_per_class`` is at least 1. Each phase is
    logged as it starts (on a CPU the whole takes minutes); ``progress``: a bar over TSTR's steps."""
    real = reference_digits(data, split)
    judge = DigitJudge(load_classifier(cfg.classifier), device)
    classes = model.cfg.num_classes
    log.info("generating %s digits (%s of each class)...", f"{cfg.cgan_per_class * classes:,}", f"{cfg.cgan_per_class:,}")
    fake = generate_digits(model, cfg.cgan_per_class, seed, device)
    log.info(
        "scoring them and the %s real digits of the %s with the MNIST classifier %s...",
        f"{len(real):,}",
        real.source,
        cfg.classifier or f"translate/assets/{SHIPPED_CLASSIFIER}",
    )
    out = score_digits(fake, real, judge, classes, per_class=True)
    if cfg.tstr_steps > 0:
        log.info(
            "TSTR: training a classifier on the generated digits for %s steps, then testing it on the real ones...", f"{cfg.tstr_steps:,}"
        )
        accuracy = train_on_synthetic(fake, real, cfg.tstr_steps, device, progress=progress)
        out["tstr_accuracy"] = {"mean": accuracy, "steps": cfg.tstr_steps, **_counts(fake, real)}
    return out


def classifier_test_metrics(model: Any, data: MNISTDataConfig, split: str, limit: Optional[int], device: torch.device) -> Metrics:
    """translate-test's scores of a classifier run: its accuracy (overall and per class) on ``split``."""
    real = reference_digits(data, split, limit)
    log.info("classifying the %s digits of the %s...", f"{len(real):,}", real.source)
    preds = DigitJudge(model.netC, device, size=None)(real.images)[0]
    return accuracy_metrics(preds, real.labels, model.cfg.num_classes, per_class=True)


class GeneratorValidation:
    """The cGAN's validation during training: ``num_images`` digits (default 1000; rounded up to a
    multiple of the classes) from fixed noise, the same at every validation, scored against up to 10,000
    of the run's training digits: accuracy, diversity and fid_mnist_classifier, judged by the shipped
    classifier (loaded on first use)."""

    REFERENCE_SIZE = 10_000
    DEFAULT_IMAGES = 1000
    #: What each validation logs (``score_digits`` without the per-class entries and TSTR).
    METRICS = ("accuracy", "fid_mnist_classifier", "is_mnist_classifier", "diversity")

    def __init__(self, data: MNISTDataConfig, num_images: Optional[int] = None, seed: int = 0) -> None:
        self.data = data
        self.num_images = num_images or self.DEFAULT_IMAGES
        self.seed = seed
        self._judge: Optional[DigitJudge] = None

    def __call__(self, model: Any, device: torch.device) -> Metrics:
        """The scores of :data:`METRICS`."""
        classes = model.cfg.num_classes
        if self._judge is None:
            limit = min(self.data.max_dataset_size or self.REFERENCE_SIZE, self.REFERENCE_SIZE)
            self._real = reference_digits(self.data, "train", limit)
            self._judge = DigitJudge(load_classifier(), device)
            self._real_scores = (*self._judge(self._real.images), class_diversity(self._real, classes))
        per_class = -(-self.num_images // classes)
        fake = generate_digits(model, per_class, self.seed, device)
        return score_digits(fake, self._real, self._judge, classes, per_class=False, real_scores=self._real_scores)
