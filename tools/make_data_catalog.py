"""Recompute src/memnet/catalog/catalog.json from the public repositories the sets come from.

    python tools/make_data_catalog.py --mirrors DIR [--reference ../shared/datasets]

DIR holds bare clones of the source repositories, one per `owner+name/repo`, `owner+name.git`
or `owner/name.git`, made e.g. with
`git clone --bare https://github.com/cszn/DnCNN DIR/cszn+DnCNN.git`. For every set the tool
reads the pinned commit's blobs (the exact bytes raw.githubusercontent.com serves for that
commit), records each file's size and SHA-256, decodes it with Pillow and records the size,
mode and SHA-256 of its pixels. Nothing is downloaded and nothing is guessed: a repository
that is missing, or a commit it does not have, stops the tool.

With `--reference DIR` each set found under DIR (same layout as a memnet data root) is compared
pixel for pixel with its source, and the result is written into the catalogue: it is how
the copy memnet's published numbers were measured on relates to the source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memnet.catalog.locate import list_images
from memnet.catalog.pixels import PixelDigest, pixel_digest
from memnet.fsutil import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "src" / "memnet" / "catalog" / "catalog.json"
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

# The commits every set is pinned to: the newest of each repository when the catalogue was made
# (the image folders have not changed in any of them since 2017-2022).
DCSCN = ("jiny2001/dcscn-super-resolution", "d382bc30d41c94ac72f8cb148d61cc4864b3b380")
DNCNN = ("cszn/DnCNN", "e93b27812d3ff523a3a79d19e5e50d233d7a8d0a")
DENOISING = ("majedelhelou/denoising_datasets", "58234876fef6f1b56306705c78dfd40cdb837b86")


@dataclass(frozen=True)
class SetSpec:
    """The hand-written part of a catalogue entry; everything else is computed."""

    name: str
    folder: str
    task: str
    role: str
    purpose: str
    repository: tuple[str, str] | None = None
    path: str | None = None
    homepage: str | None = None
    unavailable: str | None = None
    images: int | None = None  # only for sets without files in the catalogue


SETS = (
    SetSpec("Set5", "sr/Set5", "sr", "test", "super-resolution test (Bevilacqua et al. 2012)",
            DENOISING, "CSet5"),
    SetSpec("Set14", "sr/Set14", "sr", "test", "super-resolution test (Zeyde et al. 2010)",
            DENOISING, "CSet14"),
    SetSpec("BSD100", "sr/BSD100", "sr", "test",
            "super-resolution test: the 100 test images of BSD300 (Martin et al. 2001), 'B100'",
            DCSCN, "data/bsd100"),
    SetSpec("Urban100", "sr/Urban100", "sr", "test",
            "super-resolution test: buildings, self-similar structure (Huang et al. 2015)",
            DENOISING, "CUrban100"),
    SetSpec("Manga109", "sr/Manga109", "sr", "test",
            "super-resolution test: manga covers (Matsui et al. 2017)", DENOISING, "CManga109"),
    SetSpec("BSD68", "denoise/BSD68", "denoise", "test",
            "denoising test: 68 BSD300 test images, gray (Roth and Black 2009); a subset of BSD100",
            DNCNN, "testsets/BSD68"),
    SetSpec("Set12", "denoise/Set12", "denoise", "test",
            "denoising test: 12 classic gray images (Zhang et al. 2017, DnCNN)",
            DNCNN, "testsets/Set12"),
    SetSpec("Classic5", "jpeg/Classic5", "jpeg", "test",
            "JPEG deblocking test: 5 classic gray images (Foi et al. 2007)",
            DNCNN, "testsets/classic5"),
    SetSpec("LIVE1", "jpeg/LIVE1", "jpeg", "test",
            "JPEG deblocking test: the 29 LIVE1 reference images (Sheikh et al. 2005)",
            DNCNN, "testsets/LIVE1"),
    SetSpec("T91", "train/T91", "sr", "train",
            "super-resolution training: the '91 images' (Yang et al. 2010)",
            DCSCN, "data/yang91"),
    SetSpec("BSD200", "train/BSD200", "sr", "train",
            "super-resolution training: the 200 BSD300 training images; with T91 the '291' set",
            DCSCN, "data/bsd200"),
    SetSpec("Train400", "train/Train400", "denoise", "train",
            "denoising and deblocking training: 400 gray 180x180 BSD crops (Zhang et al. 2017)",
            DNCNN, "TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400"),
    SetSpec("DIV2K", "train/DIV2K", "sr", "train",
            "super-resolution training: 800 2K photos (Agustsson and Timofte 2017, NTIRE)",
            homepage="https://data.vision.ee.ethz.ch/cvl/DIV2K/",
            unavailable="published only as zip archives on its homepage, not as files of a "
            "public repository at a fixed revision, so memnet ships no hashes for it; download "
            "DIV2K_train_HR.zip there and give the unpacked folder as a recipe source",
            images=800),
)  # fmt: skip


def find_git_dir(mirrors: Path, repository: str) -> Path:
    """The bare clone of `owner/name` under `mirrors`, in any of the accepted layouts."""
    owner, name = repository.split("/")
    candidates = [
        mirrors / f"{owner}+{name}" / "repo",
        mirrors / f"{owner}+{name}.git",
        mirrors / owner / f"{name}.git",
    ]
    for candidate in candidates:
        if (candidate / "objects").is_dir() or (candidate / "HEAD").is_file():
            return candidate
    sys.exit(f"no clone of {repository} under {mirrors} (tried {', '.join(map(str, candidates))})")


def git(git_dir: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True)
    if result.returncode != 0:
        sys.exit(f"git {' '.join(args)} in {git_dir}: {result.stderr.decode().strip()}")
    return result.stdout


def source_files(git_dir: Path, commit: str, path: str) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every image directly inside `path` at `commit`, sorted by name."""
    listing = git(git_dir, "ls-tree", "-z", commit, f"{path}/").decode()
    files = []
    for record in filter(None, listing.split("\0")):
        meta, full_name = record.split("\t", 1)
        kind, object_id = meta.split()[1:3]
        name = full_name.rsplit("/", 1)[-1]
        if kind == "blob" and Path(name).suffix.lower() in IMAGE_SUFFIXES:
            files.append((name, git(git_dir, "cat-file", "blob", object_id)))
    if not files:
        sys.exit(f"{git_dir} {commit}:{path} holds no images")
    return sorted(files)


def describe_colour(modes: Counter[str]) -> str:
    words = {"L": "gray", "RGB": "RGB", "RGBA": "RGBA", "LA": "gray+alpha"}
    parts = [f"{count} {words.get(mode, mode)}" for mode, count in modes.most_common()]
    if len(parts) == 1:
        return words.get(next(iter(modes)), next(iter(modes)))
    return " + ".join(parts)


def compare_reference(
    folder: Path, digests: dict[str, PixelDigest], names: dict[str, str], hashes: dict[str, str]
) -> str | None:
    """How a local copy of a set relates to the source, decoded pixel by decoded pixel."""
    if not folder.is_dir():
        return None
    local = {path.stem.lower(): path for path in list_images(folder)}
    same = [stem for stem, path in local.items() if digests.get(stem) == pixel_digest(path)]
    extra = sorted(stem for stem in local if stem not in digests)
    missing = sorted(stem for stem in digests if stem not in local)
    differing = sorted(stem for stem in local if stem in digests and stem not in same)
    formats = sorted({p.suffix.lower() for p in local.values()})
    source_formats = sorted({Path(n).suffix.lower() for n in names.values()})
    if len(same) == len(digests) == len(local):
        if all(hashlib.sha256(p.read_bytes()).hexdigest() == hashes[s] for s, p in local.items()):
            how = "byte-identical files"
        elif formats == source_formats:
            how = f"re-encoded as {'/'.join(formats)}"
        else:
            how = f"re-encoded {'/'.join(source_formats)} -> {'/'.join(formats)}"
        return f"match: all {len(same)} files decode to the same pixels ({how})"
    problems = []
    if differing:
        problems.append(f"pixels differ in {', '.join(names[s] for s in differing)}")
    if missing:
        problems.append(f"missing {', '.join(names[s] for s in missing)}")
    if extra:
        problems.append(f"{len(extra)} files not in the source")
    return f"differs: {len(same)} of {len(digests)} files match; " + "; ".join(problems)


def catalogue_entry(spec: SetSpec, mirrors: Path, reference: Path | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": spec.name,
        "folder": spec.folder,
        "task": spec.task,
        "role": spec.role,
        "purpose": spec.purpose,
    }
    if spec.repository is None or spec.path is None:
        entry.update(
            colour="RGB",
            images=spec.images,
            source={"homepage": spec.homepage},
            unavailable=spec.unavailable,
            reference_copy=None,
            files=[],
        )
        return entry
    repository, commit = spec.repository
    git_dir = find_git_dir(mirrors, repository)
    files, digests, names, hashes = [], {}, {}, {}
    for name, data in source_files(git_dir, commit, spec.path):
        digest = pixel_digest(data)
        stem = Path(name).stem.lower()
        if stem in digests:
            sys.exit(f"{spec.name}: two source files share the name {stem!r}")
        digests[stem], names[stem] = digest, name
        hashes[stem] = hashlib.sha256(data).hexdigest()
        files.append(
            {
                "name": name,
                "bytes": len(data),
                "sha256": hashes[stem],
                "width": digest.width,
                "height": digest.height,
                "mode": digest.mode,
                "pixels_sha256": digest.sha256,
            }
        )
    entry.update(
        colour=describe_colour(Counter(f["mode"] for f in files)),
        images=len(files),
        source={
            "repository": repository,
            "commit": commit,
            "path": spec.path,
            "homepage": f"https://github.com/{repository}/tree/{commit}/{spec.path}",
        },
        unavailable=None,
        reference_copy=(
            compare_reference(reference / spec.folder, digests, names, hashes)
            if reference
            else None
        ),
        files=files,
    )
    return entry


def render(sets: list[dict[str, Any]]) -> str:
    """JSON with one line per file, so that a changed file is a one-line diff."""
    document = {
        "format": 1,
        "generated_by": "tools/make_data_catalog.py",
        "sets": [{**entry, "files": f"@files{i}@"} for i, entry in enumerate(sets)],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False)
    for i, entry in enumerate(sets):
        rows = ",\n".join(" " * 8 + json.dumps(item) for item in entry["files"])
        text = text.replace(f'"@files{i}@"', f"[\n{rows}\n      ]" if rows else "[]")
    return text + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True, help="folder of bare clones")
    parser.add_argument("--reference", type=Path, help="a data root to compare with the sources")
    parser.add_argument("--out", type=Path, default=CATALOG, help=f"default: {CATALOG}")
    args = parser.parse_args()
    sets = [catalogue_entry(spec, args.mirrors, args.reference) for spec in SETS]
    text = render(sets)
    json.loads(text)  # the hand-made layout must still be valid JSON
    atomic_write_text(args.out, text)
    for entry in sets:
        print(f"{entry['name']:<9} {entry['images']:>4} images  {entry['reference_copy'] or ''}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
