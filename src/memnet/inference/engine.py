"""Inference engine: run a MemNet over one-channel images of any size, whole, streamed or tiled.

Each call first decides its image's `Plan` (memnet.inference.planning: whole, streamed over
strips of rows, or exact tiles, in batches, within the device's memory budget) and then only
executes it. Tiles whose padded windows have the same size run together in one forward pass;
`Restorer.restore_batch` does the same for several images of one size (video frames) when one
of them runs whole and `batch_limit` says more fit the budget one image would get (not on
the CPU: a batch has not been measured faster there, and it holds more memory).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from memnet import devices
from memnet.imaging.planes import contiguous_plane, new_plane
from memnet.inference.fast_layers import fused_conv_available
from memnet.inference.fast_network import InferenceMemNet
from memnet.inference.memory import memory_budget, plain_bytes_per_pixel
from memnet.inference.planning import PROGRESS_ROWS, Batch, Layout, Plan, Planner
from memnet.inference.streaming import StreamedMemNet
from memnet.model import MemNet, exact_context

__all__ = ["Restorer"]


ProgressCallback = Callable[[int, int], None]


# The 8 flips/rotations of self-ensemble, each with its inverse.
def _dihedral(array: NDArray[np.floating], k: int) -> NDArray[np.floating]:
    out = np.rot90(array, k % 4)
    return out[:, ::-1] if k >= 4 else out


def _dihedral_inverse(array: NDArray[np.floating], k: int) -> NDArray[np.floating]:
    out = array[:, ::-1] if k >= 4 else array
    return np.rot90(out, -(k % 4))


class Restorer:
    """Apply a MemNet to (H, W) float arrays in [0, 1] units, whole or in exact tiles.

    `device` is resolved by memnet.devices.resolve_device, like memnet.load's: the default
    `auto` is the first CUDA GPU, else Apple MPS, else the CPU (the CPU on a machine with
    neither, where results are those of the former `cpu` default). `tile=None` picks the plan from the device's free memory (the whole image when it fits),
    `tile=0` always processes the whole image at once, `tile=N` uses tiles of at most N × N
    output pixels. `tile_pad=None` uses the exact context derived from the model's receptive
    field. `dtype` is fp32, fp16 or bf16 (half precision through autocast, GPU only);
    `self_ensemble` averages the 8 flips/rotations of the input. `optimize=False` calls (a copy
    of) the plain model instead of its faster, leaner rearrangement
    (memnet.inference.fast_network). On a CPU in fp32 a window too large for the activation
    budget, or a whole image of 600² pixels or more (faster so), runs streamed over strips of
    rows (memnet.inference.streaming: memory grows with the width only, nothing is recomputed),
    so only very wide images need splitting; `stream=False` runs whole or tiles instead. Calls
    from several threads at once are safe (each keeps its own buffers).

    The model passed in is only read: it keeps its device, dtype, training mode and parameters,
    and nothing process-wide is changed (the CLI applies memnet.cpu_settings.retain_freed_memory,
    which makes the CPU path ~1.3× faster; library callers may call it themselves).
    """

    def __init__(
        self,
        model: MemNet,
        *,
        device: str | torch.device = "auto",
        tile: int | None = None,
        tile_pad: int | None = None,
        dtype: str | torch.dtype = "fp32",
        self_ensemble: bool = False,
        batch_size: int | None = None,
        optimize: bool = True,
        stream: bool = True,
    ) -> None:
        self.device = devices.resolve_device(device)
        self.dtype = devices.resolve_dtype(dtype, self.device)
        self.config = model.config
        pad = exact_context(model) if tile_pad is None else int(tile_pad)
        if (tile is not None and int(tile) < 0) or pad < 0:
            raise ValueError("tile size and tile context must be non-negative")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError("batch size must be positive")
        # How many restorers run side by side in this process (a server's workers): each plans
        # with its share of the device's budget, so together they stay within it.
        self.budget_share = 1
        # Whether several images may share one forward pass (`restore_batch`). Off on the CPU:
        # its kernels already spread one image over every core, a batch has not been measured
        # faster there, and it holds more memory.
        self.batch_images = self.device.type != "cpu"
        element_bytes = 2 if self.dtype != torch.float32 else 4
        # The network that runs; the caller's module is never moved or switched to eval.
        self.model: nn.Module | None = None
        self.optimized: InferenceMemNet | None = None
        self.streamed: StreamedMemNet | None = None
        if optimize:
            # The same function as the model, rearranged for speed and a quarter of the memory.
            self.optimized = InferenceMemNet(model).to(self.device)
            bytes_per_pixel = self.optimized.bytes_per_pixel(element_bytes)
            self._network: Callable[[torch.Tensor], torch.Tensor] = self.optimized
            cpu_fp32 = self.device.type == "cpu" and self.dtype == torch.float32
            if stream and cpu_fp32 and fused_conv_available():
                # For what does not fit whole: no context recomputed (unlike tiles), a few
                # hundred rows of memory, within ~10 % of a whole pass's speed
                # (benchmarks/strips-results.md).
                self.streamed = StreamedMemNet(self.optimized)
        else:
            self.model = copy.deepcopy(model).eval().requires_grad_(False).to(self.device)
            bytes_per_pixel = plain_bytes_per_pixel(self.config, element_bytes)
            self._network = self.model
        self.planner = Planner(
            self.config,
            bytes_per_pixel,
            pad,
            tile=None if tile is None else int(tile),
            batch_size=None if batch_size is None else int(batch_size),
            self_ensemble=bool(self_ensemble),
            can_stream=self.streamed is not None,
        )

    @property
    def tile(self) -> int | None:
        """The fixed tile size (None: automatic, 0: whole)."""
        return self.planner.tile

    @property
    def tile_pad(self) -> int:
        """Context (px per side) around every tile."""
        return self.planner.pad

    @property
    def bytes_per_pixel(self) -> int:
        """Activation memory per pixel of one whole window of the network that runs."""
        return self.planner.bytes_per_pixel

    @property
    def self_ensemble(self) -> bool:
        """Whether calls average the 8 flips/rotations of the input."""
        return self.planner.self_ensemble

    def memory_budget(self) -> int:
        """Activation bytes this restorer may plan with: its share of the device's budget."""
        return memory_budget(self.device) // max(1, int(self.budget_share))

    def plan(self, height: int, width: int, budget: int | None = None) -> Plan:
        """The plan for an H × W image (budget: this restorer's share, read now, if None)."""
        return self.planner.plan(height, width, self.memory_budget() if budget is None else budget)

    def batch_limit(self, height: int, width: int, budget: int | None = None) -> int:
        """How many H × W images `restore_batch` runs in one forward pass (`images_per_pass`
        of their plan); 1 when `batch_images` is off, known without reading the budget."""
        if not self.batch_images:
            return 1
        return self.images_per_pass(self.plan(height, width, budget))

    def images_per_pass(self, plan: Plan) -> int:
        """How many images of `plan`'s size run in one forward pass: as many as fit the budget
        one image would get (`Planner.images_per_pass`), 1 when `batch_images` is off."""
        return self.planner.images_per_pass(plan) if self.batch_images else 1

    def tile_count(self, height: int, width: int) -> int:
        """Progress steps of one call on an H × W image: `plan(H, W).units`."""
        return self.plan(height, width).units

    # ---------------------------------------------------------------- running

    @torch.inference_mode()
    def _run_batch(
        self,
        windows: list[NDArray[np.floating]],
        batch: Batch,
        progress: Callable[[], None] | None = None,
    ) -> NDArray[np.floating]:
        """The network on a batch's windows; `progress()` once per window or streamed part.

        Returns float32 when the windows are float32, float64 otherwise.
        """
        out_dtype = torch.float32 if windows[0].dtype == np.float32 else torch.float64
        if len(windows) == 1 and windows[0].dtype == np.float32 and windows[0].flags.c_contiguous:
            stacked = windows[0][None, None]  # a whole float32 image: no copy (read only)
        else:
            stacked = new_plane((len(windows), 1, *windows[0].shape), np.float32)
            for index, window in enumerate(windows):
                stacked[index, 0] = window
        x = torch.from_numpy(stacked).to(self.device)
        height = batch.height
        reported = [0] * len(windows)

        def on_rows(image: int, rows: int) -> None:
            finished = batch.parts if rows == height else rows // PROGRESS_ROWS
            for _ in range(finished - reported[image]):
                if progress is not None:
                    progress()
            reported[image] = finished

        if batch.strip_rows is not None:
            assert self.streamed is not None
            y = self.streamed(x, on_rows=on_rows, rows=batch.strip_rows)
        elif self.dtype == torch.float32:
            y = self._network(x)
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                y = self._network(x)
        for image in range(len(windows)):
            on_rows(image, height)  # windows not streamed count once, here
        del x, stacked
        return y[:, 0].to("cpu", out_dtype).numpy()

    def _restore_once(
        self, array: NDArray[np.floating], layout: Layout, progress: Callable[[], None] | None
    ) -> NDArray[np.floating]:
        if layout.grid is None:
            (batch,) = layout.batches
            return self._run_batch([array], batch, progress)[0]
        output = new_plane(array.shape, array.dtype)
        for batch in layout.batches:
            windows = [array[rows, cols] for rows, cols, _, _ in batch.tiles]
            restored = self._run_batch(windows, batch, progress)
            for result, tile in zip(restored, batch.tiles, strict=True):
                rows, cols, core_rows, core_cols = tile
                out_rows = slice(rows.start + core_rows.start, rows.start + core_rows.stop)
                out_cols = slice(cols.start + core_cols.start, cols.start + core_cols.stop)
                output[out_rows, out_cols] = result[core_rows, core_cols]
            # Freed before the next batch runs: the plan counts one window's output, not two
            # (a streamed column's output is 4 bytes × its height × its width).
            del restored, result  # (the windows are views of `array`, which stays)
        return output

    def restore_batch(
        self, images: Sequence[NDArray[np.floating]], *, plan: Plan | None = None
    ) -> list[NDArray[np.floating]]:
        """Restore (H, W) network inputs of one size, `images_per_pass(plan)` per forward pass
        (`plan`: the one for their size, made here if not given); each result is what
        `self(image, plan=plan)` returns (within float32 rounding where the device's batched
        kernels sum in another order)."""
        arrays = [_network_input(image) for image in images]
        if not arrays:
            return []
        shape = arrays[0].shape
        if any(array.shape != shape for array in arrays):
            raise ValueError("restore_batch takes images of one size")
        height, width = shape
        if plan is None:
            plan = self.plan(height, width)
        elif (plan.height, plan.width) != shape:
            raise ValueError(
                f"the plan is for {plan.height}x{plan.width} images, got shape {shape}"
            )
        limit = self.images_per_pass(plan)
        if limit <= 1 or len(arrays) == 1:
            return [self(array, plan=plan) for array in arrays]
        (batch,) = plan.views[0].batches  # one image runs whole (images_per_pass says so)
        restored: list[NDArray[np.floating]] = []
        for first in range(0, len(arrays), limit):
            group = arrays[first : first + limit]
            outputs = self._run_batch(group, batch)
            restored += [
                np.asarray(out, dtype=a.dtype) for out, a in zip(outputs, group, strict=True)
            ]
        return restored

    def __call__(
        self,
        image: NDArray[np.floating],
        *,
        progress: ProgressCallback | None = None,
        plan: Plan | None = None,
    ) -> NDArray[np.floating]:
        """Restore one (H, W) network input; returns float64 (float32 for float32 input:
        the network computes in float32, so nothing is lost and half the memory is), unclipped.

        `plan` is this image's `plan(H, W)` (decided now when None). `progress(done, total)` is
        called after every forward window (tile or whole image) or, when streamed, every
        PROGRESS_ROWS rows of one; `total` is the plan's `units`.
        """
        array = _network_input(image)
        if plan is None:
            plan = self.plan(*array.shape)
        elif (plan.height, plan.width) != array.shape:
            raise ValueError(
                f"the plan is for {plan.height}x{plan.width} images, got shape {array.shape}"
            )
        if len(plan.views) != (8 if self.self_ensemble else 1):
            raise ValueError("the plan was made for another self-ensemble setting")
        total = plan.units
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        if not self.self_ensemble:
            return self._restore_once(array, plan.views[0], step)
        accumulated = new_plane(array.shape, np.float64)
        accumulated[...] = 0.0
        for k, layout in enumerate(plan.views):
            view = contiguous_plane(_dihedral(array, k))
            accumulated += _dihedral_inverse(self._restore_once(view, layout, step), k)
        accumulated /= 8.0
        return accumulated.astype(array.dtype, copy=False)


def _network_input(image: NDArray[np.floating]) -> NDArray[np.floating]:
    """`image` as the float32 (kept) or float64 (H, W) array a call computes on."""
    array = np.asarray(image)
    if array.dtype != np.float32:
        array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"Restorer expects one channel (H, W), got shape {array.shape}")
    if array.size == 0:
        raise ValueError("Restorer got an empty image")
    return array
