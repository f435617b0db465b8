"""Where benchmark and training image sets live, found by name under a data root.

The root is `--data-root`, else `$MEMNET_DATA_ROOT`, else `../shared/datasets` relative to the
current directory. A set may also be given as a folder path of clean images.
"""

from __future__ import annotations

import os
from pathlib import Path

from memnet.errors import MemNetError

__all__ = ["IMAGE_SUFFIXES", "KNOWN_SETS", "default_data_root", "list_images", "resolve_set"]

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")

# name → folder under the data root
KNOWN_SETS: dict[str, str] = {
    "Set5": "sr/Set5",
    "Set14": "sr/Set14",
    "BSD100": "sr/BSD100",
    "Urban100": "sr/Urban100",
    "BSD68": "denoise/BSD68",
    "Set12": "denoise/Set12",
    "Classic5": "jpeg/Classic5",
    "LIVE1": "jpeg/LIVE1",
    "T91": "train/T91",
    "BSD200": "train/BSD200",
    "Train400": "train/Train400",
}


def default_data_root() -> Path:
    return Path(os.environ.get("MEMNET_DATA_ROOT", "../shared/datasets"))


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def resolve_set(
    name_or_path: str, data_root: str | os.PathLike[str] | None = None
) -> tuple[str, list[Path]]:
    """(display name, image paths) for a known set name or a folder of images."""
    root = Path(data_root) if data_root is not None else default_data_root()
    if name_or_path in KNOWN_SETS:
        folder = root / KNOWN_SETS[name_or_path]
        if not folder.is_dir():
            raise MemNetError(
                f"set {name_or_path!r} not found at {folder}; point --data-root (or MEMNET_DATA_ROOT) at the datasets folder"
            )
        name = name_or_path
    else:
        folder = Path(name_or_path)
        if not folder.is_dir():
            known = ", ".join(KNOWN_SETS)
            raise MemNetError(
                f"unknown set {name_or_path!r}: not a known set name ({known}) nor a folder"
            )
        name = folder.name
    images = list_images(folder)
    if not images:
        raise MemNetError(
            f"set {name!r} ({folder}) contains no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return name, images
