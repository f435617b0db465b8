"""Where benchmark and training image sets live, found by name under a data root.

A set name (see `memnet data list`) is looked up in `--data-root` when given, else in
`$MEMNET_DATA_ROOT` when set, else in `../shared/datasets` (relative to the current directory)
and then in the folder `memnet data fetch` downloads to, `$XDG_DATA_HOME/memnet/datasets`
(`~/.local/share/memnet/datasets` when XDG_DATA_HOME is unset). Under every root a set has the
same place (`sr/Set5`, `denoise/BSD68`, ...). A set may also be given as a folder of images.
"""

from __future__ import annotations

import os
from pathlib import Path

from memnet.catalog.sets import find_set, load_catalog
from memnet.errors import MemNetError

__all__ = [
    "DATA_ROOT_ENV",
    "IMAGE_SUFFIXES",
    "KNOWN_SETS",
    "fetch_root",
    "list_images",
    "resolve_set",
    "search_roots",
]

DATA_ROOT_ENV = "MEMNET_DATA_ROOT"
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
SHARED_ROOT = Path("../shared/datasets")

# name → folder under a data root, from the catalogue (memnet/catalog/catalog.json)
KNOWN_SETS: dict[str, str] = {entry.name: entry.folder for entry in load_catalog()}


def fetch_root() -> Path:
    """Where `memnet data fetch` puts sets: `$MEMNET_DATA_ROOT`, else the user's data folder."""
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV])
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "memnet" / "datasets"


def search_roots(data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The data roots a set name is looked up in, first match wins."""
    if data_root is not None:
        return [Path(data_root)]
    if os.environ.get(DATA_ROOT_ENV):
        return [Path(os.environ[DATA_ROOT_ENV])]
    return [SHARED_ROOT, fetch_root()]


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


def _find_known(name: str, data_root: str | os.PathLike[str] | None) -> Path:
    """The known set's folder under the first root that has it; else an error with the fix."""
    roots = search_roots(data_root)
    for root in roots:
        if (root / KNOWN_SETS[name]).is_dir():
            return root / KNOWN_SETS[name]
    places = " or ".join(str(root / KNOWN_SETS[name]) for root in roots)
    target = roots[-1]  # an explicit root, $MEMNET_DATA_ROOT, or the default fetch folder
    elsewhere = f"point --data-root (or ${DATA_ROOT_ENV}) at a folder that has {KNOWN_SETS[name]}"
    entry = find_set(name)
    if entry is not None and not entry.fetchable:
        how = f"memnet cannot fetch it ({entry.unavailable})"
        raise MemNetError(f"set {name!r} not found at {places}; {how}")
    command = f"memnet data fetch {name}"
    if target != fetch_root():
        command += f" --root {target}"
    raise MemNetError(f"set {name!r} not found at {places}; run `{command}`, or {elsewhere}")


def resolve_set(
    name_or_path: str, data_root: str | os.PathLike[str] | None = None
) -> tuple[str, list[Path]]:
    """(display name, image paths) for a known set name or a folder of images."""
    known = _known_name(name_or_path)
    # A folder path wins over a set name only when it is written as a path ("./Set5").
    looks_like_path = os.sep in name_or_path or name_or_path.startswith(".")
    if known is not None and not looks_like_path:
        folder = _find_known(known, data_root)
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
