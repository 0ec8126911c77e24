"""Training data as a pure function of ``(seed, step)``: the step-indexed batch sampler, per-sample
seeding of crops, flips and masks, and the loader's defaults (see "Exact resume" in
:mod:`inpaintlib.train`).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from inpaintlib.data import PhotoFolder, photo_dir
from inpaintlib.masks import center_mask, irregular_mask

from .config import CEConfig, TrainConfig


def derive_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from a tuple of non-negative integers."""
    a, b = np.random.SeedSequence([int(v) for v in values]).generate_state(2, np.uint32)
    return ((int(a) << 32) | int(b)) & 0x7FFF_FFFF_FFFF_FFFF


SALT_EPOCH, SALT_IMAGE, SALT_MASK, SALT_RANK, SALT_SAMPLE = 1, 2, 3, 4, 5


class StepBatchSampler(Sampler):
    """Yields, for each step in ``[start_step, end_step)``, this process's list of ``(index, sample_seed)``.

    Step ``s`` takes positions ``s*G .. s*G + G - 1`` (``G = batch_size * world_size``) of the endless
    sequence of epoch permutations (epoch ``e`` is ``randperm`` seeded by ``(seed, e)``); process ``r``
    gets positions ``r*batch_size ..`` of that global batch.  Like ``DistributedSampler`` it partitions
    the data between processes, but it can start at any step, which exact resume needs.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_step: int,
        end_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < 1:
            raise ValueError("the training set is empty")
        self.n, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start, self.end = start_step, end_step
        self.rank, self.world_size = rank, world_size
        self._perms: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(derive_seed(self.seed, SALT_EPOCH, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def batch(self, step: int) -> list[tuple[int, int]]:
        """Keys of this process's part of the global batch of ``step``."""
        g = self.batch_size * self.world_size
        keys = []
        for j in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
            epoch, i = divmod(step * g + j, self.n)
            keys.append((int(self._perm(epoch)[i]), derive_seed(self.seed, SALT_SAMPLE, step, j)))
        return keys

    def __iter__(self):
        for step in range(self.start, self.end):
            yield self.batch(step)


class TrainingSamples(Dataset):
    """``(index, seed) -> (image (3,S,S) in [0,1], mask (1,S,S), 1 = valid)``; both drawn from ``seed``."""

    def __init__(self, photos: Dataset, config: TrainConfig) -> None:
        self.photos = photos
        self.size = config.image_size
        self.hole_ratio = getattr(config, "hole_ratio", None)
        self.fixed_mask = (
            center_mask(config.image_size, config.hole_size) if isinstance(config, CEConfig) else None
        )

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        index, seed = key
        image = self.photos.crop(index, torch.Generator().manual_seed(derive_seed(seed, SALT_IMAGE)))
        if self.fixed_mask is not None:
            return image, self.fixed_mask
        g = torch.Generator().manual_seed(derive_seed(seed, SALT_MASK))
        return image, irregular_mask(self.size, self.size, self.hole_ratio, generator=g)


def photo_folder(
    root: str | Path | None, split: str, size: int, train: bool, scale: tuple[float, float] | None = None
) -> Dataset:
    """The training or validation photos (the embedded ones unless ``root`` names a folder); ``scale``: the
    range of random rescale factors of training crops (``PhotoFolder``)."""
    # Decoded photos stay in memory when they fit: decoding is ~95 % of a sample's CPU cost
    # (bench/bench_data.py), and the CE run on an H100 waited on its loader ~30 % of the time.
    # Only where workers are forked and so share that memory; spawned ones would each get a copy.
    cache = "auto" if multiprocessing.get_start_method() == "fork" else False
    folder = Path(root) if root is not None else photo_dir(split)
    return PhotoFolder(folder, size, train=train, scale=scale, cache=cache)


def default_workers(device: torch.device) -> int:
    """DataLoader workers when not set: none on CPU (they would compete with the training threads);
    on a GPU all but one of this process's share of the cores, up to 16 -- decoding photos is what
    the GPU waits for (measured on an H100: CE at batch 64 waited 54 % of the time with 8 workers,
    9 % with 15)."""
    if device.type != "cuda":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 2
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(16, per_process - 1))


def stack_images(dataset: Dataset, count: int | None) -> Tensor:
    """The first ``count`` items of ``dataset`` (all when None) as one tensor."""
    n = len(dataset) if count is None else min(count, len(dataset))
    return torch.stack([dataset[i] for i in range(n)])  # (n, 3, S, S)
