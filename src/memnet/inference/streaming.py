"""Row-streamed evaluation of an `InferenceMemNet`: a whole image at the memory of a few rows.

Every conv in MemNet is 3×3 ("same"), so output row i of a layer needs only rows i-1 .. i+1 of
its input. The network can therefore run as a pipeline over horizontal strips: each step every
layer computes its next `rows` rows from what its inputs already hold, and every activation
keeps only the rows a later layer will still read — a few rows for a conv's input, up to the
74-row lag between B0 and the last gate for a long-term memory. Memory grows with the image
width, not its area, and, unlike tiles, no context is ever computed twice; a strip just
written is read by the next layer while it is still in the CPU's cache.

The arithmetic is the one of `InferenceMemNet.forward` (same folded convs, gate shares in the
same order, same branch sum), so the result equals the whole-image pass to float rounding.
It runs on a CPU with oneDNN's fused conv operators, one image at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from memnet.imaging.planes import new_plane
from memnet.inference.fast_layers import fused_conv_available
from memnet.inference.memory import streamed_bytes_for_width
from memnet.inference.row_buffers import RowBuffer, runs
from memnet.model import check_input

if TYPE_CHECKING:
    from memnet.inference.fast_layers import Affine, Conv
    from memnet.inference.fast_network import FoldedBlock, InferenceMemNet
    from memnet.inference.winograd import Rows

__all__ = ["StreamedMemNet", "default_strip_rows", "folds_activation", "streaming_available"]

# Strips of about this many pixels were fastest (benchmarks/strips.py): smaller ones pay more
# per-call overhead, taller ones fall out of the CPU's cache.
STRIP_PIXELS = 16384
MIN_STRIP_ROWS, MAX_STRIP_ROWS = 4, 64
# Strip heights are whole Winograd tiles (memnet.inference.winograd computes 4 rows at a time):
# a 14-row strip would compute 16 and drop 2.
STRIP_ROW_MULTIPLE = 4


def streaming_available(x: Tensor) -> bool:
    """Whether `x` can be streamed here: fp32 on a CPU with oneDNN's fused convs."""
    return fused_conv_available() and x.device.type == "cpu" and x.dtype == torch.float32


def default_strip_rows(width: int) -> int:
    """Rows per step for an image `width` pixels wide."""
    rows = -(-STRIP_PIXELS // max(1, width))
    rows = -(-rows // STRIP_ROW_MULTIPLE) * STRIP_ROW_MULTIPLE
    return max(MIN_STRIP_ROWS, min(MAX_STRIP_ROWS, rows))


def folds_activation(net: InferenceMemNet) -> bool:
    """Whether every conv_a activates its input as it reads it (Conv.fuses): the stream then
    keeps no activated copy of H (memory.streamed_bytes_for_width's `activated_copies`)."""
    return all(
        conv.fuses(pre)
        for block, _ in net.branches
        for conv, pre in zip(block.conv_a, block.pre_a, strict=True)
    )


def _done_of(rows: RowBuffer, offset: int) -> Callable[[], int]:
    return lambda: rows.done + offset


def _entry(values: list[int], index: int, offset: int) -> Callable[[], int]:
    return lambda: values[index] + offset


class _Strip:
    """One image's pipeline state; `step()` advances every layer by up to `rows` rows."""

    def __init__(self, net: InferenceMemNet, x: Tensor, rows: int) -> None:
        self.net, self.x, self.rows = net, x, rows
        self.height = height = x.shape[2]
        config = net.config
        channels = config.channels
        # In pages of its own, like the planes around it (memnet.imaging.planes).
        self.output = torch.from_numpy(new_plane(tuple(x.shape), np.float32))
        self.output_done = 0
        self.fenet_in = RowBuffer(x.shape[1], height, x, border=net.fenet.reach)
        # Where every conv_a activates its input as it reads it (Conv.fuses), it reads H (or
        # B_{m-1}) itself and no activated copy is kept; else each recursion keeps pre_a(H).
        self.fold_pre = folds_activation(net)
        # The memories, H and the recursions' inner rows are rings where only the Winograd
        # kernel and element-wise ops touch them (memnet.inference.row_buffers); FENet's input
        # and the branch sum are read by oneDNN's convs and move their rows.
        ring = self.fold_pre and all(block.conv_b.takes_split_rows() for block, _ in net.branches)
        self.ring = ring
        self.memories = [RowBuffer(channels, height, x, ring=ring)]  # B0; block m's gate: B_m
        self.h_bufs: list[RowBuffer] = []
        self.pre_bufs: list[list[RowBuffer]] = []
        self.inner_bufs: list[list[RowBuffer]] = []
        self.h_done: list[list[int]] = []  # [block][r]: finished rows of H_r
        for _ in range(config.blocks):
            self.h_bufs.append(RowBuffer(channels, height, x, ring=ring))
            self.pre_bufs.append(
                []
                if self.fold_pre
                else [RowBuffer(channels, height, x, 1) for _ in range(config.recursions)]
            )
            self.inner_bufs.append(
                [RowBuffer(channels, height, x, 1, ring=ring) for _ in range(config.recursions)]
            )
            self.h_done.append([0] * config.recursions)
            self.memories.append(RowBuffer(channels, height, x, ring=ring))
        self.branch_sum = RowBuffer(channels, height, x, border=1)
        self.branch_done = [0] * config.blocks
        self._wire_readers()
        self.peak_bytes = 0

    def _wire_readers(self) -> None:
        blocks = len(self.h_bufs)
        self.fenet_in.readers.append(_done_of(self.memories[0], -1))
        for m in range(1, blocks + 1):
            pres, inners, done = self.pre_bufs[m - 1], self.inner_bufs[m - 1], self.h_done[m - 1]
            for r in range(len(inners)):
                if pres:
                    pres[r].readers.append(_done_of(inners[r], -1))
                inners[r].readers.append(_entry(done, r, -1))
            # H is overwritten by each recursion in turn, never before the next one has read
            # it: H_r's rows end one above the first row its conv_a reads next.
            self.h_bufs[m - 1].readers.append(_entry(done, -1, 0))
            # B_{m-1} is read by block m's first recursion and every later block's gate.
            memory = self.memories[m - 1]
            memory.readers.append(_done_of(pres[0], 0) if pres else _done_of(inners[0], -1))
            for k in range(m, blocks + 1):
                memory.readers.append(_entry(self.h_done[k - 1], 0, 0))
            self.memories[m].readers.append(_entry(self.branch_done, m - 1, 0))
        self.branch_sum.readers.append(lambda: self.output_done - 1)

    def _buffers(self) -> list[RowBuffer]:
        found = [self.fenet_in, *self.memories, *self.h_bufs, self.branch_sum]
        for pres, inners in zip(self.pre_bufs, self.inner_bufs, strict=True):
            found += pres + inners
        return found

    def finished(self) -> bool:
        return self.output_done == self.height

    def close(self) -> None:
        """Free every buffer now: the readers' closures make cycles that the garbage collector
        would otherwise free only at its next run, hundreds of MB later."""
        for buffer in self._buffers():
            buffer.close()

    def _span(self, done: int, limit: int) -> tuple[int, int]:
        return done, min(done + self.rows, limit, self.height)

    def _conv(self, conv: Conv, source: RowBuffer, start: int, stop: int, relu: bool) -> Tensor:
        """conv(source) for rows start .. stop, read with the conv's rows of context."""
        return conv.strip(source.view(start - conv.reach, stop + conv.reach), relu=relu)

    def _conv_into(
        self, conv: Conv, source: RowBuffer, start: int, stop: int, target: Tensor, relu: bool
    ) -> None:
        """target = conv(source) for rows start .. stop, written straight into `target`."""
        conv.strip_into(target, source.view(start - conv.reach, stop + conv.reach), relu=relu)

    def _conv_add_(
        self, conv: Conv, source: RowBuffer, start: int, stop: int, target: Rows
    ) -> None:
        """target += conv(source rows start .. stop), added as the conv writes its output."""
        conv.strip_add_(target, source.rows(start - conv.reach, stop + conv.reach))

    def step(self) -> None:
        net = self.net
        # FENet: BN+ReLU of the input, then its conv.
        start, stop = self._span(self.fenet_in.done, self.height)
        if stop > start:
            self.fenet_in.append(stop - start)
            net.fenet_pre.into_(self.fenet_in.view(start, stop), self.x[:, :, start:stop])
            self.fenet_in.finish(stop)
        b0 = self.memories[0]
        start, stop = self._span(b0.done, self.fenet_in.readable(1))
        if stop > start:
            features = self._conv(net.fenet, self.fenet_in, start, stop, False)
            b0.append(stop - start)
            for a, b in runs(start, stop, b0):
                b0.view(a, b).copy_(features[:, :, a - start : b - start])
            b0.finish(stop)
        for m, (block, rec_pre) in enumerate(net.branches, start=1):
            self._block(m, block)
            self._branch(m, rec_pre)
        self._output()
        for buffer in self._buffers():
            buffer.release()
        self.peak_bytes = max(self.peak_bytes, sum(b.nbytes() for b in self._buffers()))

    def _block(self, m: int, block: FoldedBlock) -> None:
        previous, gate = self.memories[m - 1], self.memories[m]
        h_buf, done = self.h_bufs[m - 1], self.h_done[m - 1]
        for r in range(len(done)):
            inner = self.inner_bufs[m - 1][r]
            source_done = previous.done if r == 0 else done[r - 1]
            # conv_a of pre_a(H_{r-1}) (B_{m-1} for the first recursion), with the folded
            # BatchNorm and its ReLU.
            if self.fold_pre:
                self._conv_a_activated(block, r, previous if r == 0 else h_buf, source_done, inner)
            else:
                pre = self.pre_bufs[m - 1][r]
                start, stop = self._span(pre.done, source_done)
                if stop > start:
                    source = previous.view(start, stop) if r == 0 else h_buf.view(start, stop)
                    pre.append(stop - start)
                    block.pre_a[r].into_(pre.view(start, stop), source)
                    pre.finish(stop)
                start, stop = self._span(inner.done, pre.readable(1))
                if stop > start:
                    inner.append(stop - start)
                    target = inner.view(start, stop)
                    self._conv_into(block.conv_a[r], pre, start, stop, target, relu=True)
                    inner.finish(stop)
            # H_r = H_{r-1} + conv_b(...), updated in place; its gate share added at once.
            start, stop = self._span(done[r], min(inner.readable(1), source_done))
            if stop <= start:
                continue
            if r == 0:
                h_buf.append(stop - start)
                for a, b in runs(start, stop, h_buf, previous):
                    h_buf.view(a, b).copy_(previous.view(a, b))
            self._conv_add_(block.conv_b, inner, start, stop, h_buf.rows(start, stop))
            if r == 0:
                # The gate's rows start as the long-term memories' shares and H_1's, summed in
                # one pass (B0 carries the bias).
                gate.append(stop - start)
                sources = [*self.memories[:m], h_buf]
                shares = [*range(m), block.long_term]
                for a, b in runs(start, stop, gate, *sources):
                    views = [source.view(a, b) for source in sources]
                    block.shares_into_(gate.view(a, b), shares, views)
            else:
                for a, b in runs(start, stop, gate, h_buf):
                    block.share(gate.view(a, b), block.long_term + r, h_buf.view(a, b))
            done[r] = stop
            if r == len(done) - 1:
                gate.finish(stop)

    def _conv_a_activated(
        self, block: FoldedBlock, r: int, source: RowBuffer, source_done: int, inner: RowBuffer
    ) -> None:
        """inner = conv_a(pre_a(source)) for its next rows, activated as the conv reads them:
        rows of context come from `source` where the image has them, zero rows elsewhere."""
        limit = self.height if source_done == self.height else source_done - 1
        start, stop = self._span(inner.done, limit)
        if stop <= start:
            return
        lo, hi = max(start - 1, 0), min(stop + 1, self.height)
        pad_rows = (int(start == 0), int(stop == self.height))
        inner.append(stop - start)
        block.conv_a[r].strip_activated_into(
            inner.rows(start, stop), source.rows(lo, hi), pad_rows, block.pre_a[r], relu=True
        )
        inner.finish(stop)

    def _branch(self, m: int, rec_pre: Affine) -> None:
        memory = self.memories[m]
        start, stop = self._span(self.branch_done[m - 1], memory.done)
        if stop <= start:
            return
        weight = self.net.branch_weights[m - 1]
        if m == 1:
            self.branch_sum.append(stop - start)
        for a, b in runs(start, stop, memory):
            activated = rec_pre(memory.view(a, b))
            if m == 1:
                torch.mul(activated, weight, out=self.branch_sum.view(a, b))
            else:
                self.branch_sum.view(a, b).add_(activated, alpha=weight)
        self.branch_done[m - 1] = stop
        if m == len(self.branch_done):
            self.branch_sum.finish(stop)

    def _output(self) -> None:
        start, stop = self._span(self.output_done, self.branch_sum.readable(1))
        if stop <= start:
            return
        # y = (Σ_m w_m)·x + rec(Σ_m w_m·τ_m(B_m)), as in InferenceMemNet.forward.
        base = self.x[:, :, start:stop] * self.net.weight_sum
        target = self.output[:, :, start:stop]
        target.copy_(base)
        self._conv_add_(self.net.reconstruction, self.branch_sum, start, stop, target)
        self.output_done = stop


class StreamedMemNet:
    """Run an `InferenceMemNet` over (N, C, H, W) CPU fp32 input strip by strip.

    `rows` is the strip height (None: from the width, see `default_strip_rows`). After a call
    `peak_bytes` holds the most activation memory the last image's pipeline held at once.
    """

    def __init__(self, net: InferenceMemNet, rows: int | None = None) -> None:
        if rows is not None and rows < 1:
            raise ValueError("strip rows must be positive")
        self.net, self.rows = net, rows
        self.peak_bytes = 0

    def rows_for(self, width: int) -> int:
        """Strip height for an image `width` pixels wide."""
        return self.rows or default_strip_rows(width)

    def bytes_for_width(self, width: int, element_bytes: int = 4) -> int:
        """Upper bound of the activation memory for one image `width` pixels wide, any height
        (memnet.inference.memory.streamed_bytes_for_width at this width's strip rows)."""
        rows = self.rows_for(width)
        return streamed_bytes_for_width(
            self.net.config,
            width,
            rows,
            element_bytes,
            activated_copies=not folds_activation(self.net),
        )

    @torch.inference_mode()
    def __call__(
        self,
        x: Tensor,
        on_rows: Callable[[int, int], None] | None = None,
        rows: int | None = None,
    ) -> Tensor:
        """The network's output for `x` in strips of `rows` rows (None: `rows_for` its width);
        `on_rows(image, rows)` reports finished output rows."""
        check_input(self.net.config, x)
        if not streaming_available(x):
            raise ValueError("row streaming needs fp32 input on a CPU with oneDNN")
        if rows is not None and rows < 1:
            raise ValueError("strip rows must be positive")
        rows = rows or self.rows_for(x.shape[-1])
        outputs: list[Tensor] = []
        for image in x.split(1):
            picture = image.contiguous(memory_format=torch.channels_last)
            strip = _Strip(self.net, picture, rows)
            try:
                while not strip.finished():
                    strip.step()
                    if on_rows is not None:
                        on_rows(len(outputs), strip.output_done)
            finally:
                strip.close()
            self.peak_bytes = strip.peak_bytes
            outputs.append(strip.output)
        # One image (the usual case) is returned as it is: a cat would copy the whole output.
        return outputs[0].contiguous() if len(outputs) == 1 else torch.cat(outputs).contiguous()
