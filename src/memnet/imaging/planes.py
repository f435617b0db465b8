"""Image-sized arrays in pages of their own, outside the allocator's heap.

A restore makes and frees planes of tens to hundreds of MB (decoded samples, a channel's
network input and output, the result) while the network's activations come and go in the
heap around them. glibc keeps freed heap memory resident (and the `memnet` command asks it to
keep even more, memnet.cpu_settings.retain_freed_memory, so that activations are not
page-faulted afresh on every pass); a freed plane there leaves a hole that the next, slightly
different plane may not fit, and the heap grows instead: a 48 Mpx colour photo once held
0.9 GB of such holes. A plane in its own anonymous mapping takes pages from the OS as it is
written and gives all of them back when it is freed, whatever the allocator does, so a
restore's memory is what its live planes and the network's plan count
(memnet.inference.memory.picture_plane_bytes).
"""

from __future__ import annotations

import math
import mmap
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["OWN_PAGES_BYTES", "contiguous_plane", "copied_plane", "new_plane"]

# Arrays at least this large get their own mapping. Below it a hole is small and soon reused,
# and the heap is cheaper than a mapping's system calls and first-touch page faults.
OWN_PAGES_BYTES = 4 << 20


def new_plane(shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """An uninitialised array like `np.empty(shape, dtype)`; in its own pages when large."""
    kind = np.dtype(dtype)
    count = math.prod(shape)
    if count * kind.itemsize < OWN_PAGES_BYTES:
        return np.empty(shape, dtype=kind)
    # Private, so that a forked process (a worker pool) never shares writes with this one.
    flags = getattr(mmap, "MAP_PRIVATE", None)
    pages = (
        mmap.mmap(-1, count * kind.itemsize)
        if flags is None
        else mmap.mmap(-1, count * kind.itemsize, flags=flags)
    )
    # The array holds the mapping; it is unmapped when the last view of the array is freed.
    return np.frombuffer(pages, dtype=kind, count=count).reshape(shape)


def copied_plane(array: NDArray[Any], dtype: DTypeLike | None = None) -> NDArray[Any]:
    """A C-contiguous `new_plane` copy of `array`, cast to `dtype` (default: its own)."""
    copy = new_plane(array.shape, array.dtype if dtype is None else dtype)
    copy[...] = array
    return copy


def contiguous_plane(array: NDArray[Any]) -> NDArray[Any]:
    """`array` itself when it is C-contiguous, else a `copied_plane` of it."""
    return array if array.flags.c_contiguous else copied_plane(array)
