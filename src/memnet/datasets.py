"""Where benchmark and training image sets live, found by name under a data root.

The root is `--data-root`, else `$MEMNET_DATA_ROOT`, else `../shared/datasets` relative to the
current directory. A set may also be given as a folder path of clean images.
"""

from __future__ import annotations

import os
from pathlib import Path

from memnet.errors import MemNetError

__all__ = [
    "DATA_ROOT_ENV",
    "IMAGE_SUFFIXES",
    "KNOWN_SETS",
    "default_data_root",
    "list_images",
    "resolve_set",
]

DATA_ROOT_ENV = "MEMNET_DATA_ROOT"
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
    """`$MEMNET_DATA_ROOT` if set, else `../shared/datasets` relative to the current directory."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "../shared/datasets")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files are ignored)."""
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        raise MemNetError(f"cannot list folder {folder}: {error.strerror or error}") from None
    return sorted(
        p
        for p in entries
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _known_name(name: str) -> str | None:
    if name in KNOWN_SETS:
        return name
    # Set names are matched case-insensitively ("set5", "bsd100") for convenience.
    matches = [known for known in KNOWN_SETS if known.lower() == name.lower()]
    return matches[0] if matches else None


def resolve_set(
    name_or_path: str, data_root: str | os.PathLike[str] | None = None
) -> tuple[str, list[Path]]:
    """(display name, image paths) for a known set name or a folder of images."""
    root = Path(data_root) if data_root is not None else default_data_root()
    known = _known_name(name_or_path)
    # A folder path wins over a set name only when it is written as a path ("./Set5").
    looks_like_path = os.sep in name_or_path or name_or_path.startswith(".")
    if known is not None and not looks_like_path:
        folder = root / KNOWN_SETS[known]
        if not folder.is_dir():
            raise MemNetError(
                f"set {known!r} not found at {folder}; point --data-root (or {DATA_ROOT_ENV}) "
                "at the datasets folder"
            )
        name = known
    else:
        folder = Path(name_or_path)
        if not folder.is_dir():
            what = "a file, not a folder" if folder.exists() else "not a folder"
            raise MemNetError(
                f"unknown set {name_or_path!r} ({what}); known sets: {', '.join(KNOWN_SETS)}"
            )
        name = folder.resolve().name
    images = list_images(folder)
    if not images:
        raise MemNetError(
            f"set {name!r} ({folder}) contains no images ({', '.join(IMAGE_SUFFIXES)})"
        )
    return name, images
