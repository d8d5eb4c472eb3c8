"""How each kind of model is scored: which datasets it is tested on, its per-image metrics, its
validation during training, and what ``translate-test`` writes for it.

A model names its protocol (``GANModel.evaluation``); :func:`protocol_for` looks it up. Models stay tensors
in, tensors out: choosing splits and folders, and computing metrics, happen here.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from translate.config import TestConfig, ValMetricsConfig
from translate.data.base import SplitDataset
from translate.data.configs import DataConfig, Direction, ImageDataConfig, MNISTDataConfig, evaluation_data
from translate.data.registry import build_dataset, first_split
from translate.data.single import SingleDataset
from translate.errors import DatasetNotFoundError
from translate.evaluation import fid
from translate.evaluation.digits import GeneratorValidation, classifier_test_metrics, generator_test_metrics
from translate.evaluation.image_metrics import l1, psnr, ssim
from translate.evaluation.loop import evaluate, num_inputs
from translate.evaluation.report import write_metrics, write_samples, write_translations
from translate.networks.configs import check_image_size

log = logging.getLogger(__name__)

Metrics = Dict[str, Dict[str, float]]
#: ``(model, device) -> {metric: {"mean", "num_images"}}``: the metrics of :meth:`Protocol.validation_metrics`.
Validation = Callable[[Any, torch.device], Metrics]


class Protocol:
    """The evaluation of one kind of model; the base scores nothing and validates nothing."""

    #: What a sweep optimises by default (see translate.settings.validate.objective_of): a metric this protocol's
    #: validation logs, or a training loss.
    objective: str = ""

    def validation_metrics(self, distributions: bool) -> Tuple[str, ...]:
        """The names of the metrics :meth:`validation` logs (without ``val/``); ``distributions``: with the
        FID/KID/IS that ``metrics.fid`` adds where they apply."""
        return ()

    def validation(
        self, model: Any, data: DataConfig, batch_size: int, max_images: Optional[int], seed: int, metrics: ValMetricsConfig
    ) -> Optional[Validation]:
        """How training validates ``model`` every ``trainer.val_every_n_epochs``, or None."""
        return None

    def test(self, model: Any, data: DataConfig, cfg: TestConfig, out: Path, device: torch.device) -> None:
        """Write translate-test's outputs for ``model`` on ``data``'s ``cfg.split`` into ``out``."""
        raise NotImplementedError


class Translation(Protocol):
    """Image-to-image models: ``model.translate`` over the split's datasets, per-image metrics, FID/KID."""

    #: The per-image metrics of :meth:`metrics`, and the sides whose fakes FID/KID/IS score.
    per_image: Tuple[str, ...] = ()
    sides: Tuple[str, ...] = ()

    def validation_metrics(self, distributions: bool) -> Tuple[str, ...]:
        extra = tuple(f"{kind}_{side}" for side in self.sides for kind in ("FID", "KID", "IS")) if distributions else ()
        return self.per_image + extra

    def datasets(self, model: Any, data: DataConfig, split: str) -> List[SplitDataset]:
        """The datasets translate-test and validation run through ``model.translate``."""
        return [build_dataset(data, split, train=False)]

    def targets(self, model: Any, data: DataConfig, split: str) -> List[SplitDataset]:
        """Datasets of real target-domain images (items ``{"B": ...}``) that FID/KID compare the fakes with
        where :meth:`datasets` pairs the fakes with no real images; none by default."""
        return []

    def metrics(self, visuals: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Per-image metrics ``{name: [N]}`` of :meth:`datasets`' visuals."""
        raise NotImplementedError

    def validation(
        self, model: Any, data: DataConfig, batch_size: int, max_images: Optional[int], seed: int, metrics: ValMetricsConfig
    ) -> Optional[Validation]:
        """The test metrics on the ``val`` split, with FID/KID when the ``metrics`` section turns them on
        (see :func:`fid.check_fid`); None when the data has no val split."""
        data = evaluation_data(data)
        found = first_split(data, ("val",))
        if found is None:
            return None
        datasets = self.datasets(model, data, found[0])
        targets = self.targets(model, data, found[0])
        lookup = fid.check_fid(metrics)
        inception: List[fid.FeatureExtractor] = []

        def validate(model: Any, device: torch.device) -> Metrics:
            distributions = None
            if lookup is not None and lookup.path is not None:
                if not inception:  # built at the first validation, on the training device, then kept
                    inception.append(fid.inception_extractor(lookup.path, device))
                distributions = fid.DistributionMetrics(inception[0], metrics.kid_subset_size)
                _add_targets(distributions, targets, batch_size, max_images)
            scores = evaluate(
                model,
                self.metrics,
                datasets,
                batch_size,
                device,
                max_images,
                on_batch=None if distributions is None else lambda batch, visuals, scores: distributions.update(visuals),
                progress=False,
            )
            if distributions is not None:
                scores.update(distributions.compute())
            return scores

        return validate

    def test(self, model: Any, data: DataConfig, cfg: TestConfig, out: Path, device: torch.device) -> None:
        # Before any work: with metrics.fid=true, missing weights stop here rather than after the translations.
        distributions = fid.distribution_metrics(cfg.metrics, device)
        datasets = self.datasets(model, data, cfg.split)
        if distributions is not None:
            targets = self.targets(model, data, cfg.split)
            if targets:
                log.info("reading the %s real target images FID/KID compare with...", f"{num_inputs(targets, cfg.num_test):,}")
            _add_targets(distributions, targets, cfg.batch_size, cfg.num_test)
        write_translations(model, self.metrics, datasets, out, cfg, device, distributions)


def _add_targets(distributions: fid.DistributionMetrics, targets: List[SplitDataset], batch_size: int, limit: Optional[int]) -> None:
    """Give FID/KID the real images of ``targets`` (the first ``limit`` of each, as the translated inputs)."""
    for dataset in targets:
        n = num_inputs([dataset], limit)
        for batch in DataLoader(dataset, batch_size=batch_size, sampler=range(n)):
            distributions.update({"real_B": batch["B"]})


class Paired(Translation):
    """pix2pix: real_A -> fake_B, scored against real_B (L1, PSNR, SSIM) when the data has B."""

    objective = "val/L1"
    per_image = ("L1", "PSNR", "SSIM")
    sides = ("B",)

    def metrics(self, visuals: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        if "real_B" not in visuals:
            return {}
        fake, real = visuals["fake_B"].float(), visuals["real_B"].float()
        return {"L1": l1(fake, real), "PSNR": psnr(fake, real), "SSIM": ssim(fake, real)}


class OneWay(Paired):
    """One generator applied one way (CUT, or a single generator file of the reference): a ``single``
    folder; an ``aligned`` split's A halves, scored against their B halves (L1, PSNR, SSIM; FID/KID of the
    fakes against those B); or the input side of ``unaligned`` data (``<split>A``, ``<split>B`` with
    direction=BtoA), whose FID/KID compare the fakes with the other side's real images, as CUT's authors
    score horse -> zebra (testA translated, against testB)."""

    # Unpaired data has no per-image ground truth: the distance to the target domain is the measure.
    objective = "val/FID_B"

    def datasets(self, model: Any, data: DataConfig, split: str) -> List[SplitDataset]:
        if isinstance(data, ImageDataConfig) and data.kind == "unaligned":
            side = _input_side(data)
            folder = Path(data.root).expanduser() / f"{split}{side}"
            if not folder.is_dir():
                raise DatasetNotFoundError(
                    f"test folder {folder} not found; a one-way model translates {split}{side}/ of data.root (data.direction picks A or B)"
                )
            data, split = replace(data, kind="single"), f"{split}{side}"
        dataset = build_dataset(data, split, train=False)
        size = dataset.info["image_size"]
        if size is not None:
            # A model's config holds its generator's in .generator; a generator file's model is that config.
            check_image_size(getattr(model.cfg, "generator", model.cfg), size, "data.crop_size")
        return [dataset]

    def targets(self, model: Any, data: DataConfig, split: str) -> List[SplitDataset]:
        """Unaligned data: the other side's ``<split>`` folder, when there is one."""
        if not (isinstance(data, ImageDataConfig) and data.kind == "unaligned"):
            return []
        folder = f"{split}{'A' if _input_side(data) == 'B' else 'B'}"
        if not (Path(data.root).expanduser() / folder).is_dir():
            return []
        return [_domain_dataset(model, data, folder, "B")]


def _input_side(data: ImageDataConfig) -> str:
    """The folder side (A or B) of unaligned data that the model translates."""
    return "B" if data.direction == Direction.BtoA else "A"


def _domain_dataset(model: Any, data: ImageDataConfig, split: str, side: str) -> SplitDataset:
    """The images of folder ``split`` as domain ``side``'s: G's inputs (``{"A": ...}``, input_nc channels)
    or the output domain (``{"B": ...}``, output_nc channels)."""
    channels = model.info.input_nc if side == "A" else model.info.output_nc
    single = SingleDataset(replace(data, kind="single", input_nc=channels), split, train=False)
    return single if side == "A" else _AsDomainB(single)


class _AsDomainB(SplitDataset):
    """Presents a one-folder dataset's items as B-domain inputs, for G_B."""

    def __init__(self, dataset: SplitDataset) -> None:
        self.dataset = dataset

    @property
    def info(self) -> Dict[str, Any]:
        return self.dataset.info

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Dict[str, Any]:
        item = self.dataset[key]
        return {"B": item["A"], "B_path": item["A_path"]}


class Cycle(Translation):
    """CycleGAN: both directions, each scored by its cycle-consistency L1 (rec_X against real_X)."""

    objective = "val/cycle_L1_A"
    per_image = ("cycle_L1_A", "cycle_L1_B")
    sides = ("A", "B")

    def metrics(self, visuals: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {
            f"cycle_L1_{side}": l1(visuals[f"rec_{side}"].float(), visuals[f"real_{side}"].float())
            for side in ("A", "B")
            if f"real_{side}" in visuals
        }

    def datasets(self, model: Any, data: DataConfig, split: str) -> List[SplitDataset]:
        """Unaligned data: every image of <split>A through G_A, then every image of <split>B through G_B.
        A single folder: one way, G_A for direction=AtoB, G_B for BtoA."""
        assert isinstance(data, ImageDataConfig)
        if data.kind == "single":
            side = "A" if data.direction == Direction.AtoB else "B"
            return [_domain_dataset(model, data, split, side)]
        folders = ("A", "B") if data.direction == Direction.AtoB else ("B", "A")
        for folder in folders:
            path = Path(data.root).expanduser() / f"{split}{folder}"
            if not path.is_dir():
                raise DatasetNotFoundError(f"test folder {path} not found; expected {split}A/ and {split}B/ under data.root")
        return [_domain_dataset(model, data, f"{split}{folder}", side) for folder, side in zip(folders, ("A", "B"))]


class Digits(Protocol):
    """The cGAN: digits generated from fixed noise, judged by the shipped MNIST classifier (whose features
    give ``fid_mnist_classifier``; Inception FID does not apply to 32 x 32 digits)."""

    objective = "val/fid_mnist_classifier"

    def validation_metrics(self, distributions: bool) -> Tuple[str, ...]:
        return GeneratorValidation.METRICS

    def validation(
        self, model: Any, data: DataConfig, batch_size: int, max_images: Optional[int], seed: int, metrics: ValMetricsConfig
    ) -> Optional[Validation]:
        assert isinstance(data, MNISTDataConfig)
        return GeneratorValidation(data, max_images, seed)

    def test(self, model: Any, data: DataConfig, cfg: TestConfig, out: Path, device: torch.device) -> None:
        assert isinstance(data, MNISTDataConfig)
        # cgan_per_class=0 asks for the grid and samples alone: no scores, so no metrics.json.
        metrics = (
            generator_test_metrics(model, data, cfg.split, cfg.metrics, cfg.seed, device, cfg.progress_bar)
            if cfg.metrics.cgan_per_class
            else None
        )
        write_samples(model, out, cfg.n_per_class, device)
        if metrics is not None:
            write_metrics(out, metrics)


class Classification(Protocol):
    """The MNIST classifier: its accuracy, overall and per class, on the split."""

    # It has no validation during training: its training loss.
    objective = "train/loss_C/ce"

    def test(self, model: Any, data: DataConfig, cfg: TestConfig, out: Path, device: torch.device) -> None:
        assert isinstance(data, MNISTDataConfig)
        write_metrics(out, classifier_test_metrics(model, data, cfg.split, cfg.num_test, device))


PROTOCOLS: Dict[str, Protocol] = {
    "paired": Paired(),
    "one_way": OneWay(),
    "cycle": Cycle(),
    "digits": Digits(),
    "classification": Classification(),
}


def protocol_for(model: Any) -> Protocol:
    """The protocol ``model`` names in its ``evaluation`` attribute."""
    return PROTOCOLS[model.evaluation]
