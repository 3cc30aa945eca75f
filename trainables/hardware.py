"""Where a trial runs and how it reads images: device, mixed precision, loader workers.

Shared by the trainables; free of Ray.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from trainables.data.sources import DataError, ImageFiles, TrainSet


@dataclass(frozen=True)
class Hardware:
    device: torch.device
    autocast_dtype: torch.dtype | None
    num_workers: int

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def hardware(cfg) -> Hardware:
    """Device, mixed precision and loader workers for a trainable config with ``device``,
    ``precision`` and ``num_workers`` (bf16 autocast on CUDA by default)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise DataError("device: cuda, but no CUDA GPU is visible to this trial (set gpus_per_trial)")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    # bf16 autocast: by default on CUDA only; asked for explicitly it is honoured on CPU too
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and use_cuda)
    dtype = torch.bfloat16 if bf16 else None
    # Image files on a GPU: decode in workers, one per CPU the trial was given (Ray sets the
    # trial's torch threads to its cpus_per_trial), at most 8. In memory or on CPU: none.
    workers = cfg.num_workers if cfg.num_workers is not None else (min(8, torch.get_num_threads()) if use_cuda else 0)
    return Hardware(device, dtype, workers)


class Fetcher:
    """Reads training images by index: from memory, or from files through a DataLoader."""

    def __init__(self, train: TrainSet, size: int, hw: Hardware) -> None:
        self.train, self.hw = train, hw
        self.files = None if train.images is not None else ImageFiles(train.paths, size)

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        if self.files is None and not isinstance(self.train.images, torch.Tensor):
            x = self.train.images[np.asarray(idx)]  # rows of the shared cache (``image_cache.Rows``)
        elif self.files is None:
            # index_select, not images[idx]: about 7x faster gathering uint8 rows on a CPU
            x = torch.index_select(self.train.images, 0, torch.as_tensor(idx, dtype=torch.long))
        else:
            x = torch.stack([self.files[int(i)] for i in idx])
        return x.to(self.hw.device, non_blocking=True)

    def batches(self, index_batches: list[np.ndarray]) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Images of each index batch, in order (prefetched by workers for image files)."""
        if self.files is None or self.hw.num_workers == 0:
            for idx in index_batches:
                yield idx, self(idx)
            return
        loader = torch.utils.data.DataLoader(
            self.files,
            batch_sampler=[list(map(int, b)) for b in index_batches],
            num_workers=self.hw.num_workers,
            pin_memory=self.hw.device.type == "cuda",
            persistent_workers=False,
        )
        for idx, x in zip(index_batches, loader):
            yield idx, x.to(self.hw.device, non_blocking=True)


__all__ = ["Fetcher", "Hardware", "hardware"]
