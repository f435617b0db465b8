"""Side-by-side visual comparisons: degraded input, baseline, memnet and ground truth crops.

Starting from a clean picture, the degradation a user would meet is made (a smaller picture
for SR, a noisy one, a JPEG file), restored by the baseline and by a model through the same
pipeline `memnet restore` uses, and a crop of each is laid out next to the ground truth with
its PSNR (on Y, or gray) underneath. The crop is chosen where the ground truth has the most
detail unless one is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from memnet.errors import MemNetError
from memnet.imaging.color import rgb2ycbcr, round_to_uint8
from memnet.imaging.metrics import psnr, shave
from memnet.imaging.picture import Picture
from memnet.imaging.png import write_png
from memnet.imaging.resize import imresize, modcrop
from memnet.imaging.writing import PNG_COMPRESS_LEVEL
from memnet.inference.api import ImageRestorer
from memnet.tasks import SuperResolution, Task

__all__ = [
    "Panel",
    "best_crop",
    "check_comparison_target",
    "compose",
    "make_panels",
    "write_comparison",
]

LABEL_HEIGHT = 30


@dataclass(frozen=True)
class Panel:
    """One picture of the comparison, at ground-truth resolution, with its caption."""

    title: str
    pixels: NDArray[np.float64]  # (H, W) or (H, W, 3) in [0, 1]
    psnr: float | None = None


def _luminance(pixels: NDArray[np.float64]) -> NDArray[np.float64]:
    if pixels.ndim == 2:
        return pixels * 255.0
    return np.asarray(rgb2ycbcr(np.clip(pixels, 0, 1)), dtype=np.float64)[..., 0] * 255.0


def _score(restored: NDArray[np.float64], truth: NDArray[np.float64], border: int) -> float:
    # Rounded to 8 bits, as a saved picture is; Y of colour pictures, as in the papers.
    a = round_to_uint8(_luminance(restored)).astype(np.float64)
    b = round_to_uint8(_luminance(truth)).astype(np.float64)
    return psnr(shave(a, border), shave(b, border))


def make_panels(
    clean: NDArray[np.float64], task: Task, restorer: ImageRestorer, seed: int = 0
) -> list[Panel]:
    """Input, baseline (SR only: for the others the input is the baseline), memnet, ground truth.

    SR's panels differ in geometry: its input is smaller than the truth, so it is shown
    enlarged by pixel repetition, and its baseline (bicubic) is a picture of its own.
    """
    if isinstance(task, SuperResolution) and float(task.scale).is_integer():
        clean = modcrop(clean, int(task.scale))
    degraded = task.degrade_picture(clean, np.random.default_rng(seed))  # as a user has it
    border = task.border
    restored = np.asarray(
        restorer.restore_task(Picture(pixels=degraded), task).pixels,
        dtype=np.float64,
    )
    panels: list[Panel] = []
    if isinstance(task, SuperResolution):
        factor = math.ceil(task.scale)
        nearest = np.repeat(np.repeat(degraded, factor, axis=0), factor, axis=1)
        nearest = nearest[: clean.shape[0], : clean.shape[1]]
        bicubic = imresize(degraded, output_shape=clean.shape[:2])
        panels.append(Panel(f"{task.input_name} (1/{task.scale:g} size)", nearest))
        panels.append(Panel(task.baseline, bicubic, _score(bicubic, clean, border)))
    else:
        panels.append(
            Panel(f"{task.input_name} ({task.label})", degraded, _score(degraded, clean, border))
        )
    panels.append(Panel(f"memnet ({restorer.name})", restored, _score(restored, clean, border)))
    panels.append(Panel("ground truth", clean))
    return panels


def best_crop(truth: NDArray[np.float64], size: int) -> tuple[int, int]:
    """Top-left corner of the `size` × `size` window with the most gradient energy."""
    lum = _luminance(truth)
    height, width = lum.shape
    if size >= min(height, width):
        return 0, 0
    energy = np.zeros_like(lum)
    energy[:, 1:] += np.abs(np.diff(lum, axis=1))
    energy[1:, :] += np.abs(np.diff(lum, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 8)
    best, corner = -1.0, (0, 0)
    for top in range(0, height - size + 1, step):
        for left in range(0, width - size + 1, step):
            total = (
                integral[top + size, left + size]
                - integral[top, left + size]
                - integral[top + size, left]
                + integral[top, left]
            )
            if total > best:
                best, corner = float(total), (top, left)
    return corner


def compose(panels: list[Panel], crop: tuple[int, int, int] | None, zoom: int = 2) -> Image.Image:
    """Lay the panels' crops out side by side with captions; returns an 8-bit RGB image."""
    truth = panels[-1].pixels
    height, width = truth.shape[:2]
    if crop is None:
        size = min(128, height, width)
        top, left = best_crop(truth, size)
    else:
        top, left, size = crop
        if top < 0 or left < 0 or size < 8 or top + size > height or left + size > width:
            raise MemNetError(
                f"crop {left},{top} of size {size} does not fit the {width}x{height} picture"
            )
    tile = size * zoom
    sheet = Image.new("RGB", (len(panels) * (tile + 4) + 4, tile + LABEL_HEIGHT + 8), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, panel in enumerate(panels):
        window = np.clip(panel.pixels[top : top + size, left : left + size], 0, 1)
        image = Image.fromarray(round_to_uint8(window * 255.0)).convert("RGB")
        image = image.resize((tile, tile), Image.Resampling.NEAREST)
        x = 4 + i * (tile + 4)
        sheet.paste(image, (x, 4))
        draw.text((x, tile + 8), panel.title, fill="black", font=font)
        if panel.psnr is not None:
            draw.text((x, tile + 20), f"PSNR {panel.psnr:.2f} dB", fill="black", font=font)
    return sheet


def check_comparison_target(output: str | Path, *, zoom: int, overwrite: bool) -> None:
    """Refuse an output or zoom write_comparison cannot use, before any work is done."""
    output = Path(output)
    if output.exists() and not overwrite:
        raise MemNetError(f"{output} exists; pass --overwrite to replace it")
    if output.suffix.lower() != ".png":
        raise MemNetError(f"{output}: the comparison is written as PNG; use a .png name")
    if not 1 <= zoom <= 16:
        raise MemNetError(f"--zoom must be between 1 and 16, got {zoom}")


def write_comparison(
    source: str | Path,
    output: str | Path,
    task: Task,
    restorer: ImageRestorer,
    *,
    crop: tuple[int, int, int] | None = None,
    zoom: int = 2,
    seed: int = 0,
    overwrite: bool = False,
) -> list[Panel]:
    """Degrade the clean picture `source`, restore it and write the side-by-side PNG `output`.

    `crop` is (top, left, size) in ground-truth pixels (None: the most detailed square).
    """
    from memnet.fsutil import atomic_path
    from memnet.imaging.reading import read_image

    output = Path(output)
    check_comparison_target(output, zoom=zoom, overwrite=overwrite)
    clean = np.asarray(read_image(source, dtype=np.float64).pixels, dtype=np.float64)
    panels = make_panels(clean, task, restorer, seed=seed)
    sheet = compose(panels, crop, zoom=zoom)
    with atomic_path(output) as tmp, open(tmp, "wb") as out:
        write_png(out, np.asarray(sheet), level=PNG_COMPRESS_LEVEL)
    return panels
