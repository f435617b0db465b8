"""Is a folder of images the catalogued set? Decoded pixels decide, not file bytes or formats.

Files are paired by name without the suffix (case-insensitive), so `baby.bmp` and `baby.png`
are the same image when they decode to the same pixels: a lossless re-encoding matches, a
re-saved JPEG, a resized copy or an RGB copy of a gray image does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memnet.catalog.locate import list_images
from memnet.catalog.pixels import PixelDigest, pixel_digest
from memnet.catalog.sets import CatalogFile, CatalogSet, find_set, load_catalog
from memnet.errors import MemNetError

__all__ = ["Difference", "Report", "check_folder", "identify_sets"]


@dataclass(frozen=True)
class Difference:
    """One file that is not as the catalogue has it, and how."""

    name: str
    problem: str  # missing, extra, size, mode, pixels or unreadable
    detail: str


@dataclass(frozen=True)
class Report:
    """The outcome of checking one folder against one catalogued set."""

    entry: CatalogSet
    folder: Path
    matched: int
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        return not self.differences


def _compare(path: Path, item: CatalogFile) -> Difference | None:
    try:
        digest = pixel_digest(path)
    except MemNetError as error:
        return Difference(path.name, "unreadable", str(error).split(": ", 1)[-1])
    if (digest.width, digest.height) != (item.width, item.height):
        detail = f"{digest.width}x{digest.height}, expected {item.width}x{item.height}"
        return Difference(path.name, "size", detail)
    if digest.mode != item.mode:
        mode = digest.mode
        if digest.stored_mode != digest.mode:
            mode = f"{digest.stored_mode} (read as {digest.mode})"
        return Difference(path.name, "mode", f"{mode}, expected {item.mode}")
    if digest.sha256 != item.pixels_sha256:
        return Difference(path.name, "pixels", "same size and mode, different pixel values")
    return None


def check_folder(folder: Path, entry: CatalogSet) -> Report:
    """Compare every image in `folder` with the catalogued files of `entry`."""
    if not entry.files:
        raise MemNetError(f"the catalogue has no file list for {entry.name}: {entry.unavailable}")
    local: dict[str, Path] = {}
    differences: list[Difference] = []
    for path in list_images(folder):
        if path.stem.lower() in local:
            differences.append(Difference(path.name, "extra", f"a second file for {path.stem}"))
        else:
            local[path.stem.lower()] = path
    matched = 0
    for item in entry.files:
        stem = Path(item.name).stem.lower()
        if stem not in local:
            differences.append(Difference(item.name, "missing", "not in the folder"))
            continue
        difference = _compare(local.pop(stem), item)
        if difference is None:
            matched += 1
        else:
            differences.append(difference)
    differences += [Difference(p.name, "extra", "not part of the set") for p in local.values()]
    return Report(entry, folder, matched, tuple(differences))


def identify_sets(folder: Path) -> list[tuple[CatalogSet, Path]]:
    """The catalogued set(s) a folder holds: by its name, as a data root, or by its pixels."""
    if not folder.is_dir():
        raise MemNetError(f"{folder}: not a folder")
    named = find_set(folder.resolve().name)
    if named is not None and named.files:
        return [(named, folder)]
    # A data root: sets in their usual places (sr/Set5, denoise/BSD68, ...).
    found = [(e, folder / e.folder) for e in load_catalog() if (folder / e.folder).is_dir()]
    if found:
        return [(entry, path) for entry, path in found if entry.files]
    # Otherwise the set whose pixels most of the folder's images have.
    digests: dict[PixelDigest, CatalogSet] = {}
    for entry in load_catalog():
        for item in entry.files:
            key = PixelDigest(item.width, item.height, item.mode, item.pixels_sha256)
            digests[key] = entry
    votes: dict[str, int] = {}
    for path in list_images(folder):
        try:
            owner = digests.get(pixel_digest(path))
        except MemNetError:
            continue
        if owner is not None:
            votes[owner.name] = votes.get(owner.name, 0) + 1
    if not votes:
        raise MemNetError(
            f"cannot tell which set {folder} holds (no image matches the catalogue); "
            "name it with --set NAME"
        )
    best = max(votes, key=lambda name: votes[name])
    found_set = find_set(best)
    assert found_set is not None
    return [(found_set, folder)]
