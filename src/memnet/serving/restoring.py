"""One upload through memnet's own restore path: probe, read, restore, encode.

The worker does exactly what `memnet restore` does for one file (memnet.imaging.reading.read_image,
the ImageRestorer from memnet.load, memnet.imaging.writing.write_image), so a response holds the
same bytes as the file the CLI writes for the same input and options.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from memnet.errors import MemNetError
from memnet.imaging.reading import read_image
from memnet.imaging.writing import write_image
from memnet.inference.api import ImageRestorer, load
from memnet.serving.catalogue import RestoreOptions
from memnet.serving.errors import ServeError

__all__ = ["MEDIA_TYPES", "Engine", "RestoreResult", "probe_upload"]

MEDIA_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".tiff": "image/tiff",
}


@dataclass(frozen=True)
class RestoreResult:
    """An encoded restored image, ready to send."""

    data: bytes
    media_type: str
    filename: str
    width: int
    height: int


def _say(message: str, path: Path, filename: str) -> str:
    """A memnet message about a temporary upload file, told with the client's file name."""
    return message.replace(str(path), filename)


def probe_upload(
    path: Path, filename: str, options: RestoreOptions, max_pixels: int
) -> tuple[int, int]:
    """Check an upload from its header alone; returns the output (height, width).

    Empty → 400, not an image → 415, a header Pillow cannot parse → 422, more output pixels
    than `max_pixels` → 413; nothing is decoded here, so a decompression bomb costs nothing.
    """
    if path.stat().st_size == 0:
        raise ServeError(400, f"{filename}: the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises) about huge headers; the limit below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise ServeError(
            413, f"{filename}: the image is larger than this server's pixel limit"
        ) from None
    except UnidentifiedImageError:
        raise ServeError(415, f"{filename}: not an image (PNG, JPEG, WebP, TIFF or BMP)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ServeError(
            422, _say(f"{filename}: cannot decode the image ({error})", path, filename)
        ) from None
    out_height, out_width = options.task.output_shape(height, width)
    if out_height * out_width > max_pixels:
        raise ServeError(
            413,
            f"{filename}: {width}x{height} gives a {out_width}x{out_height} result, over this "
            f"server's limit of {max_pixels:,} output pixels",
        )
    return out_height, out_width


class Engine:
    """One worker's models: each is loaded once (memnet.load) and kept for the worker's life."""

    def __init__(self, device: str = "auto", tile: int | None = None, budget_share: int = 1):
        self.device = device
        self.tile = tile
        self.budget_share = budget_share
        self._restorers: dict[tuple[str, str], ImageRestorer] = {}

    def restorer_for(self, options: RestoreOptions) -> ImageRestorer:
        """The worker's ImageRestorer for the options' model and task, with their colour mode."""
        key = (options.model.spec, options.task.kind)
        if key not in self._restorers:
            restorer = load(options.model.spec, self.device, task=options.task.kind, tile=self.tile)
            if restorer.restorer is not None:
                restorer.restorer.budget_share = self.budget_share
            self._restorers[key] = restorer
        # Same network, this request's colour mode: replace() shares the loaded model.
        return replace(self._restorers[key], color=options.color)

    def run(
        self,
        upload: Path,
        filename: str,
        options: RestoreOptions,
        scratch: Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> RestoreResult:
        """Read, restore and encode one upload; a bad file raises ServeError(422)."""
        try:
            picture = read_image(upload, samples=True)
        except MemNetError as error:
            raise ServeError(422, _say(str(error), upload, filename)) from None
        restorer = self.restorer_for(options)
        target = scratch / f"{upload.stem}-out{options.suffix}"
        restored = restorer.restore_for_file(
            picture, target, progress=progress, levels=options.level
        )
        del picture
        try:
            write_image(restored, target)
            data = target.read_bytes()
        finally:
            target.unlink(missing_ok=True)
        media_type = MEDIA_TYPES.get(options.suffix, "application/octet-stream")
        return RestoreResult(data, media_type, options.filename, restored.width, restored.height)
