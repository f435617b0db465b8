"""Image-sized arrays in pages of their own (memnet.imaging.planes)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from memnet.imaging.planes import OWN_PAGES_BYTES, contiguous_plane, new_plane


def test_a_small_plane_is_an_ordinary_array() -> None:
    plane = new_plane((3, 5), np.float32)
    assert plane.shape == (3, 5)
    assert plane.dtype == np.float32
    assert plane.flags.writeable
    assert plane.flags.c_contiguous


# Run in a fresh process: in a long test session the heap already has free blocks that an
# np.empty would reuse, and the comparison would measure the session, not the allocation.
_RESIDENT_AFTER_FREE = """
import numpy as np
from memnet.cpu_settings import retain_freed_memory
from memnet.imaging.planes import new_plane

def resident():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

def freed_and_resident(make):
    before = resident()
    array = make()
    array[...] = 1
    view = array[::2]
    del array
    assert int(view[-1]) == 1  # a view keeps the pages alive
    del view
    return resident() - before

nbytes = 64 << 20
if not retain_freed_memory():
    print("skip")
else:
    # The plane first: were it a heap block, the heap's block after it would reuse its pages.
    returned = freed_and_resident(lambda: new_plane((nbytes,), np.uint8))
    kept = freed_and_resident(lambda: np.empty(nbytes, dtype=np.uint8))
    print(kept / nbytes, returned / nbytes)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_freed_plane_leaves_nothing_resident_where_the_heap_would_keep_it() -> None:
    # With the `memnet` command's allocator settings the heap keeps what is freed (up to
    # 1 GiB): a freed 64 MiB block stays resident whole, a freed plane's pages all go back
    # (a few pages of other allocations may come and go meanwhile: a tenth is far above them).
    done = subprocess.run(
        [sys.executable, "-c", _RESIDENT_AFTER_FREE], capture_output=True, text=True, check=True
    )
    if done.stdout.strip() == "skip":
        pytest.skip("glibc's mallopt is not available here")
    kept, returned = (float(part) for part in done.stdout.split())
    assert kept > 0.9
    assert returned < 0.1


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
