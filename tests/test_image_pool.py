"""CycleGAN's image pool: fills first, then swaps with probability 0.5, and survives checkpoint/resume."""

from __future__ import annotations

import random

import pytest
import torch

from translate.image_pool import ImagePool


def images(n: int, start: float = 0.0) -> torch.Tensor:
    """``n`` distinct 1x2x2 images, image i filled with ``start + i``."""
    return (start + torch.arange(n, dtype=torch.float32)).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def ids(batch: torch.Tensor) -> list[float]:
    return [float(x[0, 0, 0]) for x in batch]


def test_size_zero_passes_the_batch_through():
    batch = images(3).requires_grad_()
    assert ImagePool(0).query(batch) is batch


def test_negative_size_is_rejected():
    with pytest.raises(ValueError, match="pool_size=-1 must be >= 0"):
        ImagePool(-1)


def test_fills_first_returning_each_new_image_and_storing_a_copy():
    pool = ImagePool(4)
    batch = images(3)
    out = pool.query(batch)
    assert torch.equal(out, batch) and len(pool) == 3
    batch.fill_(-5)  # the caller reuses its buffer; the pool must keep its own copies
    assert ids(pool.images) == [0.0, 1.0, 2.0]
    assert ids(pool.query(images(1, start=3))) == [3.0] and len(pool) == 4


def test_returns_detached_images():
    out = ImagePool(2).query(images(2).requires_grad_())
    assert not out.requires_grad


def test_when_full_returns_new_or_swaps_out_a_stored_image_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(5)
    pool.query(images(5))
    swapped = 0
    for step in range(400):
        new = 100.0 + step
        before = ids(pool.images)
        (got,) = ids(pool.query(images(1, start=new)))
        after = ids(pool.images)
        if got == new:
            assert after == before
        else:
            swapped += 1
            assert got in before  # a stored image comes back exactly...
            slot = before.index(got)
            assert after[slot] == new and after[:slot] + after[slot + 1 :] == before[:slot] + before[slot + 1 :]
    assert 160 < swapped < 240  # ...with probability 0.5


def test_draws_from_torch_rng_only():
    def run(python_seed: int) -> list[float]:
        torch.manual_seed(1)
        random.seed(python_seed)
        pool = ImagePool(3)
        return [v for i in range(10) for v in ids(pool.query(images(2, start=10.0 * i)))]

    assert run(0) == run(123)


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    pool = ImagePool(3)
    pool.query(images(3))
    torch.save({"pool": pool.state_dict()}, tmp_path / "ckpt.pt")
    resumed = ImagePool(3)
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["pool"])
    assert ids(resumed.images) == ids(pool.images)
    torch.manual_seed(7)
    expected = [ids(pool.query(images(2, start=10.0 * i))) for i in range(1, 6)]
    torch.manual_seed(7)
    assert [ids(resumed.query(images(2, start=10.0 * i))) for i in range(1, 6)] == expected


def test_loading_a_pool_of_another_size_fails_clearly():
    with pytest.raises(ValueError, match="pool_size=3 but this pool has 5; resume with the same model.pool_size"):
        ImagePool(5).load_state_dict(ImagePool(3).state_dict())
