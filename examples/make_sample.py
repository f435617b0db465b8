"""Render the bundled sample picture from code (no photograph or benchmark image involved).

    python examples/make_sample.py        # writes examples/sample.png

A small outdoor scene with the things restoration is judged on: smooth gradients, hard
edges at every angle, fine periodic texture, lettering, and grain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WIDTH, HEIGHT = 256, 176
OUT = Path(__file__).with_name("sample.png")


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], octaves: int = 5) -> np.ndarray:
    total = np.zeros(shape)
    for octave in range(octaves):
        step = 2 ** (octaves - octave + 1)
        coarse = rng.standard_normal((shape[0] // step + 2, shape[1] // step + 2))
        layer = Image.fromarray(coarse.astype(np.float32)).resize(
            (shape[1], shape[0]), Image.Resampling.BICUBIC
        )
        total += np.asarray(layer) / (2**octave)
    return total / np.abs(total).max()


def render() -> Image.Image:
    rng = np.random.default_rng(2017)
    yy = np.mgrid[0:HEIGHT, 0:WIDTH][0].astype(np.float64)
    sky = np.dstack([110 + 60 * yy / HEIGHT, 160 + 50 * yy / HEIGHT, 235 - 20 * yy / HEIGHT])
    image = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((188, 14, 226, 52), fill=(255, 222, 120), outline=(240, 170, 60), width=2)

    # mountains with a textured surface
    ridge = [
        (0, 110),
        (40, 70),
        (75, 96),
        (120, 48),
        (160, 92),
        (200, 66),
        (256, 104),
        (256, 176),
        (0, 176),
    ]
    mask = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(mask).polygon(ridge, fill=255)
    rock = 95 + 45 * fractal_noise(rng, (HEIGHT, WIDTH))
    rock_rgb = np.dstack([rock * 0.85, rock * 0.9, rock * 0.8]).clip(0, 255).astype(np.uint8)
    image.paste(Image.fromarray(rock_rgb), (0, 0), mask)
    draw.polygon([(120, 48), (108, 62), (116, 60), (124, 66), (132, 58)], fill=(245, 245, 250))

    # a house: straight edges, a striped roof, windows with bars
    draw.rectangle((30, 118, 100, 168), fill=(196, 80, 60), outline=(60, 30, 20), width=2)
    for i in range(0, 80, 4):
        draw.line((24 + i, 118, 65, 92), fill=(90 + (i % 8) * 10, 50, 40), width=1)
    draw.polygon([(24, 118), (65, 92), (106, 118)], outline=(50, 25, 20))
    for x0 in (40, 74):
        draw.rectangle((x0, 128, x0 + 16, 144), fill=(240, 232, 160), outline=(40, 40, 40), width=2)
        draw.line((x0 + 8, 128, x0 + 8, 144), fill=(40, 40, 40), width=1)
        draw.line((x0, 136, x0 + 16, 136), fill=(40, 40, 40), width=1)
    draw.rectangle((58, 146, 70, 168), fill=(90, 55, 30))

    # a fence of thin slats and a resolution wedge
    for x in range(112, 250, 5):
        draw.rectangle((x, 140, x + 2, 172), fill=(235, 225, 205))
    for i in range(12):
        draw.line((140 + i * 2, 112, 112 + i * 6, 136), fill=(30, 30, 30), width=1)

    font = ImageFont.load_default()
    draw.text((186, 124), "memnet", fill=(20, 20, 60), font=font)
    draw.text((6, 6), "MemNet 2017", fill=(255, 255, 255), font=font)

    # a little grain, as any real picture has
    pixels = np.asarray(image.filter(ImageFilter.SMOOTH), dtype=np.float64)
    pixels += rng.normal(0, 1.5, pixels.shape)
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


if __name__ == "__main__":
    render().save(OUT, optimize=True)
    print(f"wrote {OUT}")
