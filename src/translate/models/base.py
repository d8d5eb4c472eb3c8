"""What a model declares to the training engine, and what the engine hands back to it.

A model is an ``nn.Module`` that owns its networks and losses and declares:
- ``optimizer_groups``: optimiser name -> the names of the networks it updates (the engine builds one Adam
  per group from ``model.optim``, its LR scheduler, and logs the gradient norm of each network);
- ``training_step(batch, opt)``: one optimisation step, written in the order of the paper's equations,
  calling ``opt.step(name, loss)`` for each update and returning its scalar losses and diagnostics;
- ``visuals(batch)``: named rows of images for the TensorBoard grid;
- ``translate(batch)`` (image-to-image models): the test-time visuals of a batch;
- ``evaluation``: the name of its protocol in ``translate.evaluation.protocols`` (datasets, metrics,
  validation and translate-test's outputs), which this layer does not import;
- ``extra_state()`` / ``load_extra_state()``: training state beyond the networks (e.g. image pools).
The engine knows nothing else about any model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, ContextManager, Dict, Iterable, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from translate.models import model_class
from translate.models.configs import ModelConfig


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
    decides what those mean (AMP dtype, gradient scaling, gradient-norm bookkeeping). A GAN updates its
    generators only when ``generator_step`` is true: with ``trainer.d_steps_per_g_step=n`` the engine sets
    it on every n-th step, and the discriminators learn on every step (n critic updates per generator one).
    """

    generator_step: bool = True

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

    #: ``generate`` (noise + label -> image, the cGAN) or ``translate`` (image -> image).
    task: ClassVar[str] = "translate"
    optimizer_groups: ClassVar[Mapping[str, Tuple[str, ...]]] = {}
    #: The ``data.kind`` values this model can train or test on.
    data_kinds: ClassVar[Tuple[str, ...]] = ()
    #: Its evaluation protocol, by name (see ``translate.evaluation.protocols``).
    evaluation: ClassVar[str] = ""
    #: The networks that make images: the ones ``model.ema`` averages and translate-test runs.
    generators: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__()
        #: The model's section of the config (its schema in ``translate.models.configs``), already validated.
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

    def extra_state(self) -> Dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass


class OneWayModel(GANModel):
    """A model whose test time is one generator ``netG`` applied one way (pix2pix, CUT, a single generator
    file of the reference).

    ``translate({"A": [N, input_nc, H, W], optional "B": [N, output_nc, H, W]})`` returns real_A,
    fake_B = G(real_A) and, when the data has B, real_B (scored against fake_B: L1, PSNR, SSIM).
    """

    generators = ("G",)
    netG: nn.Module

    @torch.no_grad()
    def translate(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        out = {"real_A": batch["A"], "fake_B": self.netG(batch["A"])}
        if "B" in batch:
            out["real_B"] = batch["B"]
        return out

    @torch.no_grad()
    def visuals(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        return self.translate(batch)


def build_model(cfg: ModelConfig, info: Mapping[str, Any]) -> GANModel:
    """The model ``cfg.name`` names, built from its validated config ``cfg`` for data described by ``info``."""
    return model_class(cfg.name)(cfg, DataInfo(**info))
