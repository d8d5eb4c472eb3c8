"""The history buffer of generated images that CycleGAN's discriminators learn from (Shrivastava et al. 2017)."""

from __future__ import annotations

import torch


class ImagePool:
    """A buffer of up to ``pool_size`` previously generated images.

    Showing the discriminator older fakes as well as the newest ones damps oscillation. Per image,
    :meth:`query` follows the reference: while the pool is not full, store the image and return it; once
    full, with probability 0.5 return a random stored image and store the new one in its place, otherwise
    return the new image. ``pool_size=0`` turns the pool off. Randomness comes from torch's global RNG, so
    restoring the RNG state together with :meth:`state_dict` makes a resumed run draw the same images.
    """

    def __init__(self, pool_size: int = 50) -> None:
        if pool_size < 0:
            raise ValueError(f"pool_size={pool_size} must be >= 0 (0 turns the pool off)")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch ``[N, C, H, W]`` drawn from ``images`` and the pool (detached; input unchanged
        when the pool is off)."""
        if self.pool_size == 0:
            return images
        if images.dim() != 4:
            raise ValueError(f"ImagePool.query expects a [N, C, H, W] batch, got shape {tuple(images.shape)}")
        out = []
        for image in images.detach():
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() < 0.5:
                index = int(torch.randint(self.pool_size, ()).item())
                out.append(self.images[index].to(device=image.device, dtype=image.dtype))
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        """Plain ``{"pool_size": int, "images": [Tensor[C, H, W], ...]}``, loadable with ``weights_only=True``."""
        return {"pool_size": self.pool_size, "images": list(self.images)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the stored images from :meth:`state_dict` output; the pool size must match."""
        if state["pool_size"] != self.pool_size:
            raise ValueError(
                f"the saved image pool has pool_size={state['pool_size']} but this pool has {self.pool_size}; "
                "resume with the same model.pool_size"
            )
        self.images = [image.detach().clone() for image in state["images"]]
