"""`memnet data fetch|list` against a file server on loopback that each test starts itself.

The server serves files made in code under raw.githubusercontent.com's layout, answers HTTP
Range requests, and can be told to drop the connection part-way through a file or to send
wrong bytes. No test reaches the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

import memnet.catalog
import memnet.catalog.check
import memnet.catalog.sets
from memnet.catalog import CatalogFile, CatalogSet, Source
from memnet.catalog.fetch import MIRROR_ENV, fetch_set, partial_folder
from memnet.catalog.locate import DATA_ROOT_ENV, resolve_set
from memnet.catalog.pixels import pixel_digest
from memnet.cli import main
from memnet.errors import MemNetError

REPOSITORY, COMMIT, PATH = "someone/images", "0" * 40, "sets/tiny"


def image_bytes(seed: int, size: tuple[int, int] = (40, 30), fmt: str = "PNG") -> bytes:
    """A small noisy RGB picture, so every file's bytes are different and incompressible."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def make_entry(files: dict[str, bytes], name: str = "Tiny", folder: str = "sr/Tiny") -> CatalogSet:
    """A catalogue entry for files made in code, as tools/make_data_catalog.py would write it."""
    items = []
    for file_name, data in files.items():
        digest = pixel_digest(data)
        items.append(
            CatalogFile(
                file_name, len(data), hashlib.sha256(data).hexdigest(),
                digest.width, digest.height, digest.mode, digest.sha256,
            )
        )  # fmt: skip
    return CatalogSet(
        name=name, folder=folder, task="sr", role="test", purpose="a test set", colour="RGB",
        images=len(items), source=Source(REPOSITORY, COMMIT, PATH, None), unavailable=None,
        reference_copy=None, files=tuple(items),
    )  # fmt: skip


@dataclass
class FileServer:
    """What the loopback server serves and what it was asked."""

    files: dict[str, bytes]
    port: int = 0
    drop_after: dict[str, int] = field(default_factory=dict)  # name → bytes sent, then hang up
    drops_left: dict[str, int] = field(default_factory=dict)  # name → how many times to drop
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (name, Range)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            prefix = f"/{REPOSITORY}/{COMMIT}/{PATH}/"
            path = unquote(self.path)
            name = path[len(prefix) :] if path.startswith(prefix) else None
            state.requests.append((name or path, self.headers.get("Range")))
            if name not in state.files:
                self.send_error(404)
                return
            data = state.files[name]
            start = 0
            header = self.headers.get("Range")
            if header and not state.ignore_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drops_left.get(name, 0) > 0:
                state.drops_left[name] -= 1
                self.wfile.write(body[: state.drop_after[name]])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    state = FileServer(files={})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv(MIRROR_ENV, state.base)
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny(server: FileServer) -> CatalogSet:
    server.files = {f"img{i}.png": image_bytes(i) for i in range(3)}
    return make_entry(server.files)


def test_fetch_verifies_and_places_the_whole_set(tiny: CatalogSet, tmp_path: Path) -> None:
    folder, downloaded = fetch_set(tiny, tmp_path, progress=False)
    assert downloaded
    assert folder == tmp_path / "sr" / "Tiny"
    assert sorted(p.name for p in folder.iterdir()) == ["img0.png", "img1.png", "img2.png"]
    for item in tiny.files:
        assert hashlib.sha256((folder / item.name).read_bytes()).hexdigest() == item.sha256
    assert not partial_folder(folder).exists()
    # A second fetch finds the verified set and downloads nothing.
    assert fetch_set(tiny, tmp_path, progress=False) == (folder, False)


def test_a_dropped_connection_is_resumed_with_a_range_request(
    tiny: CatalogSet, server: FileServer, tmp_path: Path
) -> None:
    server.drop_after, server.drops_left = {"img1.png": 1000}, {"img1.png": 1}
    folder, _ = fetch_set(tiny, tmp_path, progress=False)
    assert (folder / "img1.png").read_bytes() == server.files["img1.png"]
    assert ("img1.png", "bytes=1000-") in server.requests


def test_interrupted_fetch_leaves_no_half_set_and_the_next_run_resumes(
    tiny: CatalogSet, server: FileServer, tmp_path: Path
) -> None:
    server.drop_after, server.drops_left = {"img1.png": 700}, {"img1.png": 99}
    with pytest.raises(MemNetError, match=r"img1\.png: the connection kept breaking .*again"):
        fetch_set(tiny, tmp_path, progress=False)
    target = tmp_path / "sr" / "Tiny"
    assert not target.exists()
    kept = partial_folder(target)
    assert (kept / "img0.png").read_bytes() == server.files["img0.png"]
    # Every retry asked for the rest of the file and appended what came.
    tries = [offset for name, offset in server.requests if name == "img1.png"]
    assert tries == [None] + [f"bytes={700 * i}-" for i in range(1, len(tries))]
    kept_bytes = (kept / "img1.png.part").stat().st_size
    assert kept_bytes == 700 * len(tries)
    server.drops_left, server.requests = {}, []
    fetch_set(tiny, tmp_path, progress=False)
    assert (target / "img1.png").read_bytes() == server.files["img1.png"]
    asked = dict(server.requests)
    assert "img0.png" not in asked  # complete and verified: not downloaded again
    assert asked["img1.png"] == f"bytes={kept_bytes}-"
    assert not kept.exists()


def test_a_server_that_ignores_range_restarts_the_file(
    tiny: CatalogSet, server: FileServer, tmp_path: Path
) -> None:
    server.ignore_range = True
    server.drop_after, server.drops_left = {"img2.png": 500}, {"img2.png": 1}
    folder, _ = fetch_set(tiny, tmp_path, progress=False)
    assert (folder / "img2.png").read_bytes() == server.files["img2.png"]


def test_a_hash_mismatch_names_the_file_and_keeps_nothing_of_it(
    tiny: CatalogSet, server: FileServer, tmp_path: Path
) -> None:
    good = server.files["img2.png"]
    server.files["img2.png"] = good[:-1] + bytes([good[-1] ^ 1])  # same length, one bit off
    with pytest.raises(MemNetError, match=r"Tiny/img2\.png: SHA-256 .* does not match"):
        fetch_set(tiny, tmp_path, progress=False)
    target = tmp_path / "sr" / "Tiny"
    assert not target.exists()
    assert not (partial_folder(target) / "img2.png.part").exists()
    assert not (partial_folder(target) / "img2.png").exists()
    server.files["img2.png"] = good + b"more"
    with pytest.raises(MemNetError, match=r"img2\.png: more than the catalogue's [\d,]+ bytes"):
        fetch_set(tiny, tmp_path, progress=False)
    assert not target.exists()
    server.files["img2.png"] = good
    fetch_set(tiny, tmp_path, progress=False)
    assert (target / "img2.png").read_bytes() == good


def test_http_errors_and_a_foreign_target_are_one_line_errors(
    tiny: CatalogSet, server: FileServer, tmp_path: Path
) -> None:
    del server.files["img1.png"]
    with pytest.raises(MemNetError, match=r"img1\.png: HTTP 404"):
        fetch_set(tiny, tmp_path, progress=False)
    occupied = tmp_path / "other"
    (occupied / "sr" / "Tiny").mkdir(parents=True)
    (occupied / "sr" / "Tiny" / "img0.png").write_bytes(b"not this")
    with pytest.raises(MemNetError, match=r"exists but is not the catalogued Tiny"):
        fetch_set(tiny, occupied, progress=False)
    assert (occupied / "sr" / "Tiny" / "img0.png").read_bytes() == b"not this"


def use_catalogue(monkeypatch: pytest.MonkeyPatch, sets: tuple[CatalogSet, ...]) -> None:
    """Make every reader of the shipped catalogue see `sets` instead."""
    for module in (memnet.catalog, memnet.catalog.sets, memnet.catalog.check):
        monkeypatch.setattr(module, "load_catalog", lambda: sets)


@pytest.fixture
def catalogue_with(monkeypatch: pytest.MonkeyPatch, tiny: CatalogSet) -> CatalogSet:
    """The shipped catalogue plus `tiny` renamed Set5, as the CLI sees it."""
    real = memnet.catalog.sets.load_catalog()
    fake_set5 = dataclasses.replace(tiny, name="Set5", folder="sr/Set5")
    sets = (fake_set5, *(entry for entry in real if entry.name != "Set5"))
    use_catalogue(monkeypatch, sets)
    return fake_set5


def test_cli_fetch_into_the_default_root_then_eval_finds_it_by_name(
    catalogue_with: CatalogSet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)  # no ../shared/datasets from here
    with pytest.raises(MemNetError, match=r"not found at .*; run `memnet data fetch Set5`, or"):
        resolve_set("Set5")
    assert main(["data", "fetch", "Set5", "--quiet"]) == 0
    out = capsys.readouterr().out
    expected = tmp_path / "xdg" / "memnet" / "datasets" / "sr" / "Set5"
    assert f"Set5: 3 files fetched and verified: {expected}" in out
    name, images = resolve_set("Set5")
    assert (name, [p.name for p in images]) == ("Set5", ["img0.png", "img1.png", "img2.png"])
    assert images[0].parent == expected
    eval_args = ["eval", "--task", "sr", "--scales", "2", "--sets", "Set5", "--method", "bicubic"]
    assert main([*eval_args, "--quiet"]) == 0
    assert "| Set5 | " in capsys.readouterr().out
    # An explicit root still wins, and its error names the command for that root.
    with pytest.raises(MemNetError, match=r"run `memnet data fetch Set5 --root elsewhere`"):
        resolve_set("Set5", "elsewhere")


def test_cli_offline_is_a_one_line_error(
    catalogue_with: CatalogSet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    assert main(["data", "fetch", "Set5", "--root", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"memnet data: error: cannot reach 127.0.0.1:{port} (")
    assert "offline" in err
    assert not (tmp_path / "sr" / "Set5").exists()


def test_cli_refuses_unknown_and_unfetchable_sets_before_downloading(
    catalogue_with: CatalogSet,
    server: FileServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["data", "fetch", "Set5", "NoSuchSet", "--root", str(tmp_path)]) == 1
    assert "unknown set 'NoSuchSet'; known sets: Set5, " in capsys.readouterr().err
    assert main(["data", "fetch", "Set5", "DIV2K", "--root", str(tmp_path)]) == 1
    assert "DIV2K cannot be fetched by memnet: " in capsys.readouterr().err
    assert server.requests == []


def test_cli_list_shows_every_set_with_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("Set5", "Set14", "BSD100", "Urban100", "Manga109", "BSD68", "Set12",
                 "Classic5", "LIVE1", "T91", "BSD200", "Train400", "DIV2K"):  # fmt: skip
        assert any(line.split()[0] == name for line in out.splitlines()[1:]), name
    assert "majedelhelou/denoising_datasets@5823487:CSet5" in out
    assert "not fetchable" in out


def test_a_folder_of_images_is_a_training_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memnet.training.patches import build_training_set
    from memnet.training.recipe import DataSpec, TaskSpec

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"photo{i}.jpg").write_bytes(image_bytes(i, (48, 40), "JPEG"))
    (photos / "notes.txt").write_text("not an image")
    task = TaskSpec(kind="sr", levels=[2])
    by_path = build_training_set(task, DataSpec(sources=[str(photos)], patch_size=16))
    assert len(by_path) == 3
    monkeypatch.chdir(tmp_path)  # a bare name that is no set name is a folder too
    assert len(build_training_set(task, DataSpec(sources=["photos"], patch_size=16))) == 3
