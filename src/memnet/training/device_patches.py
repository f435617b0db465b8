"""Training patches made on the training device (a GPU): degrade, store and cut there.

For short, fast runs (tools/gpu_train.py) the CPU batch maker of `memnet.training.patches` is the bottleneck;
here the clean images live on the device and every batch is one gather. The degradations are
the test protocol's:
- SR: MATLAB bicubic down then up, as dense per-axis resize matrices built from
  `memnet.imaging.resize.resize_weights` and applied in float64 on the device (the same sums
  as `SuperResolution.degrade`, in another order);
- JPEG: each flip/rotation of each image compressed whole on the CPU (`memnet.training.patches`'s views,
  libjpeg exact), then moved to the device;
- denoising: fresh Gaussian noise per patch, drawn on the device.
Every image is stored under its 8 flips/rotations (each view degraded as a whole image), so a
batch is one random view and window per patch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from memnet.imaging.resize import resize_weights
from memnet.tasks import Deblock, SuperResolution, make_task
from memnet.training.patches import compressed_views

__all__ = ["DevicePatches", "resize_matrix", "sr_degrade"]


def resize_matrix(in_length: int, out_length: int, scale: float) -> Tensor:
    """MATLAB bicubic resize of one axis as an (out, in) float64 matrix (antialiased down)."""
    weights, indices = resize_weights(in_length, out_length, scale, antialias=True)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
    return torch.from_numpy(matrix)


def sr_degrade(truth: Tensor, scale: float) -> Tensor:
    """`SuperResolution(scale).degrade` of an (H, W) uint8 ground truth, on its device, float64."""
    height, width = truth.shape
    low_h, low_w = math.ceil(height / scale), math.ceil(width / scale)
    device = truth.device
    down_h = resize_matrix(height, low_h, 1 / scale).to(device)
    down_w = resize_matrix(width, low_w, 1 / scale).to(device)
    up_h = resize_matrix(low_h, math.ceil(low_h * scale), scale).to(device)
    up_w = resize_matrix(low_w, math.ceil(low_w * scale), scale).to(device)
    image = truth.to(torch.float64) / 255.0
    low = down_h @ image @ down_w.T
    return (up_h @ low @ up_w.T)[:height, :width]


def _views(image: Tensor) -> list[Tensor]:
    """The 8 flips/rotations of an (H, W) tensor, as `memnet.training.patches` orders them."""
    out = []
    for op in range(8):
        view = image.flip(-1) if op & 4 else image
        out.append(torch.rot90(view, op & 3, dims=(0, 1)))
    return out


class DevicePatches:
    """(input, truth) patch batches of one task, cut on `device` from 8 stored views per image."""

    def __init__(
        self,
        kind: str,
        levels: Sequence[float],
        images: Sequence[NDArray[np.uint8]],
        patch_size: int,
        device: torch.device,
    ) -> None:
        self.kind, self.patch_size, self.device = kind, patch_size, device
        self.sigmas = torch.tensor([float(s) for s in levels], device=device)
        pairs: list[tuple[list[Tensor], list[Tensor]]] = []
        for level in levels if kind != "denoise" else [None]:
            task = make_task(kind, level) if level is not None else None
            coded_views: list[list[NDArray[np.uint8]]] = []
            if isinstance(task, Deblock):
                # libjpeg on the CPU (outside the GIL): the 8 views of every image on threads
                usable = [im for im in images if min(im.shape) >= patch_size]
                jobs = [(task, im) for im in usable]
                with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
                    coded_views = list(
                        pool.map(lambda job: compressed_views(*job, augment=True), jobs)
                    )
            coded = iter(coded_views)
            for image in images:
                truth_np = task.ground_truth(image) if task is not None else image
                if min(truth_np.shape) < patch_size:
                    continue
                truth = torch.from_numpy(np.ascontiguousarray(truth_np)).to(device)
                truths = _views(truth)
                if isinstance(task, SuperResolution):
                    # bicubic commutes with flips/transposes: degrade once, then turn
                    inputs = _views(sr_degrade(truth, task.scale).float())
                elif isinstance(task, Deblock):
                    inputs = [torch.from_numpy(v).to(device).float() / 255 for v in next(coded)]
                else:
                    inputs = truths
                pairs.append((inputs, truths))
        if not pairs:
            raise ValueError(f"no training image is at least {patch_size}x{patch_size} px")
        side = max(max(t.shape) for _, views in pairs for t in views)
        count = len(pairs)
        self.inputs = torch.zeros((count, 8, side, side), dtype=torch.float32, device=device)
        self.truths = torch.zeros((count, 8, side, side), dtype=torch.uint8, device=device)
        sizes = torch.zeros((count, 8, 2), dtype=torch.long)
        for k, (inputs, truths) in enumerate(pairs):
            for op in range(8):
                h, w = truths[op].shape
                self.truths[k, op, :h, :w] = truths[op]
                if kind != "denoise":
                    self.inputs[k, op, :h, :w] = inputs[op]
                sizes[k, op] = torch.tensor([h, w])
        if kind == "denoise":
            self.inputs = torch.empty(0, device=device)  # noise is drawn per batch instead
        self.sizes = sizes.to(device)
        positions = (sizes[:, 0, 0] - patch_size + 1) * (sizes[:, 0, 1] - patch_size + 1)
        # images in proportion to their patch positions, as a dense patch grid would
        self.weights = positions.to(torch.float64).to(device)
        self.offsets = torch.arange(patch_size, device=device)

    def __len__(self) -> int:
        return int(self.truths.shape[0])

    def sample(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(inputs, targets) of shape (batch, 1, P, P), float32 on the device, in [0, 1] units."""
        p, device = self.patch_size, self.device
        which = torch.multinomial(self.weights, batch, replacement=True, generator=generator)
        ops = torch.randint(0, 8, (batch,), device=device, generator=generator)
        size = self.sizes[which, ops]
        room = (size - p + 1).to(torch.float64)
        corner = (
            torch.rand((batch, 2), device=device, generator=generator, dtype=torch.float64) * room
        )
        tops, lefts = corner[:, 0].long(), corner[:, 1].long()
        rows = (tops[:, None] + self.offsets)[:, :, None]
        cols = (lefts[:, None] + self.offsets)[:, None, :]
        index = (which[:, None, None], ops[:, None, None], rows, cols)
        targets = self.truths[index].float() / 255
        if self.kind == "denoise":
            sigma = self.sigmas[
                torch.randint(0, len(self.sigmas), (batch,), device=device, generator=generator)
            ]
            noise = torch.randn((batch, p, p), device=device, generator=generator)
            inputs = targets + noise * (sigma / 255)[:, None, None]
        else:
            inputs = self.inputs[index]
        return inputs[:, None], targets[:, None]
