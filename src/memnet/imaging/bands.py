"""Whole pictures worked on a band of rows at a time, the bands shared out over the cores.

Decoding, colour conversion, MATLAB bicubic and rounding run in numpy on bands of about
`BAND_PIXELS` pixels, so that their temporaries stay near 100 MB whatever the image size.
Each band writes only its own rows of the result, so bands may run at once: numpy leaves the
GIL in its loops, and these passes run where the network is not (before it or after it), with
the cores otherwise idle. `for_each_band` splits the same pixels over its threads, so the
temporaries in flight stay the size of one band; the result does not depend on the split.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from memnet.cpu_settings import available_cores

__all__ = ["BAND_PIXELS", "BAND_THREADS", "band_rows", "band_threads", "for_each_band"]

# Pixels per band of rows wherever a whole picture is converted (decoding, colour conversion,
# bicubic, rounding to integers): their temporaries, a few times 24 bytes per pixel in float64,
# stay near 100 MB whatever the image size.
BAND_PIXELS = 1 << 20
# Threads a band pass uses at most: past a few cores these passes are bound by memory. On 2
# cores, the colour merge after a 12 Mpx ×2 restore's network (Cb/Cr bicubic, YCbCr → RGB,
# rounding) took 0.47 s on 2 threads against 0.76 s on one, with the same output bytes.
BAND_THREADS = 4


def band_rows(height: int, width: int, pixels: int = BAND_PIXELS) -> list[tuple[int, int]]:
    """Row ranges of about `pixels` pixels each covering an image `height` rows high."""
    step = max(1, pixels // max(1, width))
    return [(start, min(start + step, height)) for start in range(0, height, step)]


def band_threads() -> int:
    """Threads a band pass runs on here: the cores, at most BAND_THREADS."""
    return min(BAND_THREADS, available_cores())


def for_each_band(height: int, width: int, work: Callable[[int, int], None]) -> None:
    """`work(start, stop)` for every band of rows of a `height` × `width` image, on up to
    BAND_THREADS threads (one band of pixels in flight in all). `work` must write only rows
    start .. stop of its results; its first error is raised here once the others are done.
    """
    threads = band_threads()
    bands = band_rows(height, width, BAND_PIXELS // threads)
    if threads == 1 or len(bands) == 1:
        for start, stop in bands:
            work(start, stop)
        return
    # A pool per pass, not one for the process: a pass inside another's band then never
    # waits for threads its caller holds, and nothing stays running between restores.
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="memnet-bands") as pool:
        futures = [pool.submit(work, start, stop) for start, stop in bands]
        try:
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the bands not yet begun are not run
            raise
