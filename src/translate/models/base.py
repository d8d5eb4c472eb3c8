"""What a model declares to the training engine, and what the engine hands back to it.

A model is an ``nn.Module`` that owns its networks and losses and declares:
- ``optimizer_groups``: optimiser name -> the names of the networks it updates (the engine builds one Adam
  per group from ``model.optim``, its LR scheduler, and logs the gradient norm of each network);
- ``training_step(batch, opt)``: one optimisation step, written in the order of the paper's equations,
  calling ``opt.step(name, loss)`` for each update and returning its scalar losses and diagnostics;
- ``visuals(batch)``: named rows of images for the TensorBoard grid;
- ``extra_state()`` / ``load_extra_state()``: training state beyond the networks (e.g. image pools).
The engine knows nothing else about any model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from translate import fid
from translate.config import ModelConfig
from translate.data import build_dataset, first_split
from translate.evaluation import evaluate


Validation = Callable[["GANModel", torch.device, bool], Dict[str, Dict[str, float]]]


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its data to size its networks."""

    input_nc: int
    output_nc: int
    image_size: Optional[int] = None
    num_classes: Optional[int] = None


class Optimization:
    """The engine's side of a training step: mixed precision, backward, optimiser updates.

    Models call ``autocast()`` around forward passes and ``step(name, loss)`` once per update; the engine
    decides what those mean (AMP dtype, gradient scaling, gradient-norm bookkeeping).
    """

    def autocast(self) -> ContextManager:
        return contextlib.nullcontext()

    def step(self, name: str, loss: torch.Tensor) -> None:
        raise NotImplementedError


def set_requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    """Freeze or unfreeze networks; a frozen discriminator accumulates no gradient in the generator's step."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class GANModel(nn.Module):
    """Base class of every model; see the module docstring for the contract."""

    config_class: ClassVar[type] = ModelConfig
    #: ``generate`` (noise + label -> image, the cGAN) or ``translate`` (image -> image).
    task: ClassVar[str] = "translate"
    optimizer_groups: ClassVar[Mapping[str, Tuple[str, ...]]] = {}
    #: The ``data.kind`` values this model can train or test on.
    data_kinds: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info

    @property
    def networks(self) -> Dict[str, nn.Module]:
        """Every network by its name, as saved in checkpoints."""
        names = {n for group in self.optimizer_groups.values() for n in group}
        return {name: getattr(self, f"net{name}") for name in sorted(names)}

    def training_step(self, batch: Any, opt: Optimization) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def visuals(self, batch: Any) -> Dict[str, torch.Tensor]:
        """Named rows of images [N, C, H, W] in [-1, 1] for the image grid, top to bottom."""
        raise NotImplementedError

    def translate(self, batch: Any) -> Dict[str, torch.Tensor]:
        """Test time: named visuals [N, C, H, W] (real_A, fake_B, ...) for a batch of test inputs."""
        raise NotImplementedError

    def test_metrics(self, visuals: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Per-image metrics [N] computed from :meth:`translate`'s visuals, by name."""
        return {}

    def test_datasets(self, data: Any, split: str) -> List[Dataset]:
        """The datasets ``translate-test`` runs through :meth:`translate`."""
        return [build_dataset(data, split, train=False)]

    def validation(self, data: Any, batch_size: int, max_images: Optional[int], seed: int, metrics: Any) -> Optional[Validation]:
        """How the engine validates this model every ``trainer.val_every_n_epochs``, or None: a callable
        ``(model, device, probe) -> {metric: {"mean", "num_images"}}`` (``probe``: on a couple of inputs,
        just to learn the metrics' names). Image-to-image models: their test metrics on the ``val`` split,
        and FID/KID when the ``metrics`` section turns them on (see :func:`fid.check_fid`)."""
        found = first_split(data, ("val",)) if self.task == "translate" else None
        if found is None:
            return None
        datasets = self.test_datasets(data, found[0])
        lookup = fid.check_fid(metrics)
        inception: List[fid.FeatureExtractor] = []

        def validate(model: "GANModel", device: torch.device, probe: bool) -> Dict[str, Dict[str, float]]:
            distributions = None
            if lookup is not None and lookup.path is not None:
                if not inception:  # built at the first validation, on the training device, then kept
                    inception.append(fid.inception_extractor(lookup.path, device))
                distributions = fid.DistributionMetrics(inception[0], int(metrics.kid_subset_size))
            # A probe needs two inputs per direction: FID and KID are not defined on one image.
            scores = evaluate(
                model, datasets, batch_size, device, 2 if probe else max_images,
                on_batch=None if distributions is None else lambda batch, visuals: distributions.update(visuals),
                progress=False,
            )
            if distributions is not None:
                scores.update(distributions.compute())
            return scores

        return validate

    def extra_state(self) -> Dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass
