"""Image-sized arrays in pages of their own (memnet.imaging.planes)."""

from __future__ import annotations

import os
import sys

from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from memnet.cpu_settings import retain_freed_memory
from memnet.imaging.planes import OWN_PAGES_BYTES, contiguous_plane, new_plane


def _resident_anonymous_bytes() -> int:
    """RssAnon of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_a_small_plane_is_an_ordinary_array() -> None:
    plane = new_plane((3, 5), np.float32)
    assert plane.shape == (3, 5) and plane.dtype == np.float32
    assert plane.flags.writeable and plane.flags.c_contiguous


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_freed_plane_leaves_nothing_resident_where_the_heap_would_keep_it() -> None:
    # The `memnet` command's allocator settings: the heap keeps what is freed (up to 1 GiB).
    if not retain_freed_memory():
        pytest.skip("glibc's mallopt is not available here")
    nbytes = 64 << 20
    kept = _freed_and_resident(lambda: np.empty(nbytes, dtype=np.uint8))
    returned = _freed_and_resident(lambda: new_plane((nbytes,), np.uint8))
    # The heap's block stays resident whole; the plane's pages all go back (a few pages of
    # other allocations may come and go meanwhile: a tenth of the plane is far above them).
    assert kept > 0.9 * nbytes
    assert returned < 0.1 * nbytes


def _freed_and_resident(make: Callable[[], NDArray[np.uint8]]) -> int:
    """Resident bytes an array made by `make`, written and then freed, leaves behind."""
    before = _resident_anonymous_bytes()
    array = make()
    array[...] = 1
    view = array[::2]
    del array
    assert int(view[-1]) == 1  # a view keeps the pages alive
    del view
    return _resident_anonymous_bytes() - before


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_never_writes_into_the_parents_plane() -> None:
    plane = new_plane((OWN_PAGES_BYTES // 4,), np.float32)
    plane[...] = 1.0
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        plane[...] = 7.0
        os._exit(0)
    os.waitpid(child, 0)
    assert float(plane.max()) == 1.0


def test_contiguous_plane_copies_only_what_is_not_contiguous() -> None:
    array = np.arange(24, dtype=np.float64).reshape(4, 6)
    assert contiguous_plane(array) is array
    turned = contiguous_plane(np.rot90(array))
    assert turned.flags.c_contiguous
    assert np.array_equal(turned, np.rot90(array))
