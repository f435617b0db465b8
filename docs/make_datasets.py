"""Write docs/datasets.md from the catalogue shipped in the package.

python docs/make_datasets.py            # rewrites docs/datasets.md
python docs/make_datasets.py --check    # exit 1 when docs/datasets.md is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from memnet.catalog import CatalogSet, load_catalog
from memnet.fsutil import atomic_write_text

PAGE = Path(__file__).resolve().parent / "datasets.md"

INTRO = """\
# Image sets: `memnet data`

<!-- written by docs/make_datasets.py from src/memnet/catalog/catalog.json; do not edit -->

A wrong copy of a benchmark set (a re-saved JPEG, an RGB copy of a gray image, another split)
is the commonest reason a PSNR does not match a paper. memnet ships a catalogue of every set it
names: where the set comes from, pinned to one commit of a public repository, with the SHA-256
of every source file and a digest of its decoded pixels.

```bash
memnet data list                          # every set, what it is for, its source, where it is here
memnet data fetch Set5 Set14 BSD100       # download, verify every file, put each set in place
memnet data check ~/my/Set14 --set Set14  # is my copy the canonical one? (decoded pixels)
```

**Where sets go.** `memnet data fetch` writes to `--root DIR`, else `$MEMNET_DATA_ROOT`, else
`$XDG_DATA_HOME/memnet/datasets` (`~/.local/share/memnet/datasets` without XDG_DATA_HOME), each
set in its usual place (`sr/Set5`, `denoise/BSD68`, ...). `memnet eval` and `memnet train`
look a set name up in `--data-root` when given, else in `$MEMNET_DATA_ROOT` when set, else in
`../shared/datasets` (relative to the current directory) and then in that default folder. When
a set is in none of them, the error gives the `memnet data fetch` command that puts it there.

**How a fetch works.** Files come from `https://raw.githubusercontent.com/OWNER/REPO/COMMIT/PATH`
(set `$MEMNET_DATA_MIRROR` to a server with the same layout to use a mirror). Each file is
downloaded into a hidden `.NAME.partial` folder beside the set's folder, resumed with an HTTP
Range request when the connection breaks, and checked against the catalogue's SHA-256; the
folder is renamed to the set's name only when every file is verified, so a failed or
interrupted fetch never leaves half a set. Running the same command again resumes it. Offline,
an HTTP error or a hash mismatch is a one-line error naming the file.

**How a check works.** `memnet data check DIR` pairs files by name without the suffix, decodes
them with Pillow and compares size, mode and a SHA-256 of the pixel bytes with the catalogue:
a lossless re-encoding (BMP → PNG) matches; each file that differs is named with how (`size`,
`mode`, `pixels`, `missing`, `extra`, `unreadable`); the exit code is 1 when any does. Without
`--set` the set is recognised from the folder's name, from a data root's layout, or from the
images themselves.

**Where the hashes come from.** `python tools/make_data_catalog.py --mirrors DIR --reference
../shared/datasets` recomputes the whole catalogue from bare clones of the source repositories
(the blobs at the pinned commits are exactly the bytes the raw-file host serves) and compares
the copy memnet's published results were measured on with each source, pixel for pixel; that
comparison is the "memnet's copy" column below (`-`: a set that copy does not have).

## The sets
"""


def _source(entry: CatalogSet) -> str:
    if not entry.fetchable:
        return f"[homepage]({entry.source.homepage}); not fetchable: {entry.unavailable}"
    return f"[`{entry.source.describe()}`]({entry.source.homepage})"


def render() -> str:
    """The whole page, from the catalogue."""
    rows = [
        "| set | for | images | colour | source (repository@commit:folder) | memnet's copy |",
        "|---|---|---|---|---|---|",
    ]
    for entry in load_catalog():
        size = sum(item.bytes for item in entry.files)
        images = f"{entry.images} ({size / 1e6:.1f} MB)" if size else str(entry.images)
        rows.append(
            f"| {entry.name} | {entry.purpose} | {images} | {entry.colour} | {_source(entry)} "
            f"| {entry.reference_copy or '-'} |"
        )
    notes = """
Notes
- BSD68 is a subset of BSD100: never train a denoiser on BSD100 and test it on BSD68.
- Set14 holds one gray image (`bridge`). memnet scores a gray file as it is and an RGB file on
  its Y channel (16-235), so an RGB copy of `bridge` changes the Set14 PSNR; `memnet data check`
  reports it as `mode: RGB, expected L`.
- Urban100 and Manga109 are the colour versions (`CUrban100`, `CManga109`) of their repository.
- Any folder of images can be a training source or an evaluation set (docs/training.md); the
  catalogue is only needed to fetch and to verify the sets above.
"""
    return INTRO + "\n" + "\n".join(rows) + "\n" + notes


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = PAGE.read_text("utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE} is out of date: run python docs/make_datasets.py", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(PAGE, text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
