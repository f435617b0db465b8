"""The Python API from several threads and several processes at once: the outputs of serial calls."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import memnet
from memnet.model import MemNet
from memnet.weights.files import save_weights

# Each image a different size, so that calls running at once have different plans and buffers.
SHAPES = [(24, 32), (17, 29), (32, 20), (21, 21), (28, 36), (19, 25)]
THREADS = 4


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    # Random (not identity) weights: every layer changes the output, so a shared or
    # overwritten buffer would show.
    model = MemNet(blocks=2, recursions=2, channels=8)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_weights(model, path, {})  # no task: each test names its own
    return path


def pictures() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in SHAPES]


@pytest.mark.parametrize(("task", "tile"), [("denoise", None), ("sr", None), ("sr", 16)])
def test_one_restorer_shared_by_threads_gives_the_serial_outputs(
    weights: Path, task: str, tile: int | None
) -> None:
    scale = 2 if task == "sr" else None
    restorer = memnet.load(weights, device="cpu", task=task, scale=scale, tile=tile)
    images = pictures()
    serial = [restorer(image) for image in images]
    with ThreadPoolExecutor(THREADS) as pool:
        # every image several times, so that the same shapes also run at the same moment
        concurrent = list(pool.map(restorer, images * 3))
    for index, out in enumerate(concurrent):
        assert np.array_equal(out, serial[index % len(images)]), f"image {index}"


def test_restorers_loaded_and_files_written_in_threads(weights: Path, tmp_path: Path) -> None:
    images = pictures()
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"in{index}.png")
    serial = [memnet.load(weights, device="cpu", task="denoise")(image) for image in images]

    def load_and_restore(index: int) -> Path:
        restorer = memnet.load(weights, device="cpu", task="denoise")
        return restorer.restore_file(tmp_path / f"in{index}.png", tmp_path / f"out{index}.png")

    with ThreadPoolExecutor(THREADS) as pool:
        written = list(pool.map(load_and_restore, range(len(images))))
    for index, path in enumerate(written):
        assert np.array_equal(np.asarray(Image.open(path)), serial[index]), f"image {index}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


WORKER = """
import json, sys
import numpy as np
from PIL import Image
import memnet
restorer = memnet.load(sys.argv[1], device="cpu", task="denoise")
for source, target in json.loads(sys.argv[2]):
    np.save(target, restorer(np.asarray(Image.open(source))))
"""


def test_processes_at_once_give_the_serial_outputs(weights: Path, tmp_path: Path) -> None:
    images = pictures()
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"in{index}.png")
    restorer = memnet.load(weights, device="cpu", task="denoise")
    serial = [restorer(image) for image in images]
    # Two processes, each restoring the same images, started together.
    workers = []
    for worker in range(2):
        pairs = [
            (str(tmp_path / f"in{i}.png"), str(tmp_path / f"w{worker}-{i}.npy")) for i in range(3)
        ]
        command = [sys.executable, "-c", WORKER, str(weights), json.dumps(pairs)]
        workers.append(subprocess.Popen(command, stderr=subprocess.PIPE, text=True))
    for process in workers:
        _out, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors
    for worker in range(2):
        for index in range(3):
            out = np.load(tmp_path / f"w{worker}-{index}.npy")
            assert np.array_equal(out, serial[index]), f"process {worker}, image {index}"
