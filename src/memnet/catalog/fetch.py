"""Download a catalogued set, verify every byte, and put it in place only when it is complete.

Files are fetched into `.NAME.partial/` beside the set's folder. Each file is downloaded to
`FILE.part`, resumed with an HTTP Range request when a previous attempt stopped part-way,
checked against the catalogue's SHA-256 and only then renamed to its name. When every file is
there and verified, the partial folder is renamed to the set's folder in one step: a reader
sees no set or the whole set, never half of one. The partial folder is kept after a failure so
that the next `memnet data fetch` resumes where this one stopped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from tqdm import tqdm

from memnet import __version__
from memnet.catalog.sets import RAW_BASE, CatalogFile, CatalogSet
from memnet.errors import MemNetError
from memnet.fsutil import sha256_of

__all__ = ["MIRROR_ENV", "download_base", "fetch_set", "partial_folder"]

# A server that mirrors raw.githubusercontent.com's layout (OWNER/REPO/COMMIT/PATH/FILE).
MIRROR_ENV = "MEMNET_DATA_MIRROR"
CHUNK = 1 << 16
ATTEMPTS = 3  # per file: a dropped connection is resumed this many times before giving up
TIMEOUT_S = 30.0


def download_base() -> str:
    """`$MEMNET_DATA_MIRROR` when set, else the public raw-file host."""
    return os.environ.get(MIRROR_ENV) or RAW_BASE


def partial_folder(target: Path) -> Path:
    """Where an unfinished fetch of `target` keeps its files (hidden, beside the target)."""
    return target.parent / f".{target.name}.partial"


def _is_complete(folder: Path, entry: CatalogSet) -> bool:
    return all(
        (folder / item.name).is_file()
        and (folder / item.name).stat().st_size == item.bytes
        and sha256_of(folder / item.name) == item.sha256
        for item in entry.files
    )


class _InterruptedError(Exception):
    """The connection ended before the whole file came; the `.part` file keeps what did."""


def _open(url: str, offset: int) -> http.client.HTTPResponse:
    """GET `url` from byte `offset` on, with one-line errors for HTTP and network failures."""
    request = urllib.request.Request(url, headers={"User-Agent": f"memnet/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise MemNetError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        reason = getattr(error.reason, "strerror", None) or error.reason
        raise MemNetError(
            f"cannot reach {url.split('/')[2]} ({reason}); are you offline? "
            f"(${MIRROR_ENV} points memnet at another server)"
        ) from None
    except TimeoutError:
        raise MemNetError(f"{url}: no answer within {TIMEOUT_S:.0f} s") from None
    return response


def _copy(response: http.client.HTTPResponse, out: IO[bytes], bar: tqdm) -> None:
    try:
        for block in iter(lambda: response.read(CHUNK), b""):
            out.write(block)
            bar.update(len(block))
    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as error:
        raise _InterruptedError(str(error)) from None


def _download(url: str, item: CatalogFile, part: Path, bar: tqdm) -> None:
    """Bring `part` to the file's full length, resuming from what it already holds."""
    for _ in range(ATTEMPTS):
        offset = part.stat().st_size if part.exists() else 0
        if offset > item.bytes:
            part.unlink()  # longer than the file can be: nothing in it is worth keeping
            bar.update(-offset)
            offset = 0
        if offset == item.bytes:
            return
        response = _open(url, offset)
        with response:
            if offset and response.status != 206:
                # The server ignored the Range header and sends the whole file again.
                bar.update(-offset)
                offset = 0
            with open(part, "ab" if offset else "wb") as out:
                try:
                    _copy(response, out, bar)
                except _InterruptedError:
                    continue
        if part.stat().st_size == item.bytes:
            return
        if part.stat().st_size > item.bytes:
            part.unlink()
            raise MemNetError(
                f"{url}: more than the catalogue's {item.bytes:,} bytes arrived (a changed "
                "source, or a mirror serving another file)"
            )
    got = part.stat().st_size if part.exists() else 0
    raise MemNetError(
        f"{url}: the connection kept breaking ({got:,} of {item.bytes:,} bytes arrived); "
        "run the same command again to resume"
    )


def _fetch_file(base: str, entry: CatalogSet, item: CatalogFile, folder: Path, bar: tqdm) -> None:
    done = folder / item.name
    if done.is_file():
        if done.stat().st_size == item.bytes and sha256_of(done) == item.sha256:
            bar.update(item.bytes)
            return  # fetched by an earlier, interrupted run
        done.unlink()
    part = folder / f"{item.name}.part"
    if part.exists():
        bar.update(min(part.stat().st_size, item.bytes))
    url = entry.source.file_url(item.name, base)
    _download(url, item, part, bar)
    actual = sha256_of(part)
    if actual != item.sha256:
        part.unlink()
        raise MemNetError(
            f"{entry.name}/{item.name}: SHA-256 {actual[:16]}… does not match the catalogue's "
            f"{item.sha256[:16]}… (a corrupt download or a changed source); the file was "
            "removed, run again to retry"
        )
    os.replace(part, done)


def fetch_set(entry: CatalogSet, root: Path, *, progress: bool = True) -> tuple[Path, bool]:
    """(folder of the set, whether it was downloaded now) after fetching `entry` into `root`."""
    if not entry.fetchable:
        raise MemNetError(f"{entry.name} cannot be fetched by memnet: {entry.unavailable}")
    target = root / entry.folder
    if target.exists():
        if target.is_dir() and _is_complete(target, entry):
            return target, False
        raise MemNetError(
            f"{target} exists but is not the catalogued {entry.name} (see `memnet data check "
            f"{target} --set {entry.name}`); move it away to fetch a fresh copy"
        )
    folder = partial_folder(target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MemNetError(f"cannot create {folder}: {error.strerror or error}") from None
    base = download_base()
    total = sum(item.bytes for item in entry.files)
    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=entry.name,
        disable=not progress, leave=True,
    ) as bar:  # fmt: skip
        for item in entry.files:
            _fetch_file(base, entry, item, folder, bar)
    expected = {item.name for item in entry.files}
    for stray in folder.iterdir():
        if stray.name not in expected:  # a .part left by an earlier catalogue, say
            with contextlib.suppress(OSError):
                shutil.rmtree(stray) if stray.is_dir() else stray.unlink()
    os.replace(folder, target)
    return target, True
