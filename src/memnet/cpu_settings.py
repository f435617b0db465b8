"""Process-wide CPU settings: how many compute threads, and keeping freed memory.

Both are the process's to choose, so the library never applies them on its own: the `memnet`
command keeps freed memory for the whole process (cli.main), and training tunes its threads.
A program that uses the Python API may call `retain_freed_memory()` once at its start.

On a shared machine both matter: with the cores busy, two threads of one operation wait for
each other and one thread can be several times faster; and glibc returning large freed blocks
to the kernel makes every whole-image pass page-fault its activations afresh.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import statistics
import sys

__all__ = ["ThreadTuner", "available_cores", "retain_freed_memory"]


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ThreadTuner:
    """Keeps the faster of 1 and all compute threads, measured again every `hold_s` seconds.

    On an idle machine all cores win; when other processes keep the cores busy, the threads of
    one operation wait for each other at every barrier and one thread can be several times
    faster. Measuring costs `probe` steps per choice, a few percent of the time at most.
    """

    def __init__(self, most: int, *, probe: int = 3, hold_s: float = 600.0) -> None:
        self.choices = [most, 1]
        self.probe, self.hold_s = probe, hold_s
        self._times: dict[int, list[float]] = {}
        self._probing = 0  # index into choices while measuring, -1 while holding
        self._left = float(probe)  # steps left while measuring, seconds left while holding
        self.current = most
        _set_threads(most)

    def record(self, seconds: float) -> None:
        """Compute time of the step just taken at the current thread count."""
        if self._probing < 0:
            self._left -= seconds
            if self._left <= 0:
                self._times, self._probing = {}, 0
                self._use(self.choices[0], self.probe)
            return
        self._times.setdefault(self.current, []).append(seconds)
        self._left -= 1
        if self._left > 0:
            return
        self._probing += 1
        if self._probing < len(self.choices):
            self._use(self.choices[self._probing], self.probe)
            return
        medians = {n: statistics.median(t) for n, t in self._times.items()}
        self._probing = -1
        self._use(min(medians, key=lambda n: medians[n]), self.hold_s)

    def _use(self, threads: int, budget: float) -> None:
        self.current, self._left = threads, float(budget)
        _set_threads(threads)


def _set_threads(threads: int) -> None:
    # PyTorch only when threads are tuned: every command imports this module at start-up.
    import torch

    torch.set_num_threads(threads)


def retain_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    Whole-image passes have activations large enough for glibc to map and unmap them on every
    operation; each new map is page-faulted and zeroed again (a third of the time of the
    optimised network's pass, half of a validation). Process-wide and not undone, so it is
    applied by the `memnet` command (every subcommand), not by the library; a program using
    `memnet.Restorer` on a CPU may call it once for the same ~1.3× speed-up. Idempotent.
    Returns whether the setting was applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold, m_arena_max = -1, -2, -3, -8
    return all(
        mallopt(option, value) == 1
        for option, value in (
            (m_mmap_threshold, 1 << 30),
            (m_trim_threshold, 1 << 30),
            (m_top_pad, 1 << 28),
            # One heap for every thread: the threads that convert bands of rows or deflate PNG
            # pieces (memnet.imaging.bands, .png) would otherwise each get a heap of their own,
            # which the memory kept in the main one cannot serve (a 12 Mpx SR restore peaked
            # 112 MB higher). They allocate a few large blocks per band, so they rarely wait.
            (m_arena_max, 1),
        )
    )
