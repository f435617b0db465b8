"""Training data: exact degradations, aligned patches, the 8 transforms, fresh noise, streams."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from memnet.errors import MemNetError
from memnet.imaging.jpeg import jpeg_roundtrip
from memnet.tasks import SuperResolution
from memnet.training.batches import BatchStream, batch_generator
from memnet.training.patches import (
    DenoisePatches,
    PairedPatches,
    PatchSource,
    build_training_set,
)
from memnet.training.recipe import DataSpec, SyntheticSpec, TaskSpec, ValidationSet, ValidationSpec
from memnet.training.synthetic import synthetic_images
from memnet.training.validation import build_validation

ONE = SyntheticSpec(images=1, size=48, seed=3)


def dihedral(image: np.ndarray, op: int) -> np.ndarray:
    return np.rot90(image[:, ::-1] if op & 4 else image, op & 3)


def one_image_set(kind: str, levels: list[float], patch: int) -> PatchSource:
    data = DataSpec(sources=["synthetic"], synthetic=ONE, patch_size=patch)
    return build_training_set(TaskSpec(kind=kind, levels=levels), data)  # type: ignore[arg-type]


def test_synthetic_images_are_deterministic_and_varied() -> None:
    a, b = (
        synthetic_images(SyntheticSpec(images=3, size=64)),
        synthetic_images(SyntheticSpec(images=3, size=64)),
    )
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].dtype == np.uint8
    assert a[0].shape == (64, 64)
    assert not np.array_equal(a[0], a[1])
    assert a[0].std() > 20  # real content, not a flat field


def test_sr_patch_is_the_exact_protocol_input_under_the_same_transform() -> None:
    source = one_image_set("sr", [2], patch=48)  # patch = image: the position is fixed
    assert isinstance(source, PairedPatches)
    truth = synthetic_images(ONE)[0]
    degraded = SuperResolution(2).degrade(truth, np.random.default_rng(0))
    seen = set()
    for index in range(40):
        x, y = source.sample(batch_generator(0, 0, index), 1, augment=True)
        op = next(k for k in range(8) if np.array_equal(y[0] * 255, dihedral(truth, k)))
        seen.add(op)
        np.testing.assert_array_equal(x[0], dihedral(degraded.astype(np.float32), op))
    assert seen == set(range(8))


def test_sr_scales_are_all_sampled_and_patches_aligned() -> None:
    source = one_image_set("sr", [2, 3, 4], patch=16)
    assert len(source) == 3  # one degraded copy per scale, made once
    x, y = source.sample(batch_generator(1, 0, 0), 64, augment=False)
    assert x.shape == y.shape == (64, 16, 16)
    assert x.dtype == np.float32
    # bicubic input is close to its ground truth patch, never a different place
    assert np.abs(x - y).mean() < 0.1


def test_jpeg_inputs_are_whole_image_compressions() -> None:
    source = one_image_set("jpeg", [10], patch=48)
    truth = synthetic_images(ONE)[0]
    x, y = source.sample(batch_generator(0, 0, 0), 1, augment=False)
    np.testing.assert_array_equal(x[0], (jpeg_roundtrip(truth, 10) / 255).astype(np.float32))
    np.testing.assert_array_equal(y[0], (truth / 255).astype(np.float32))


def test_denoise_noise_is_fresh_and_of_the_right_strength() -> None:
    flat = [np.full((40, 40), 128, dtype=np.uint8)]
    source = DenoisePatches(flat, 32, sigmas=[25])
    x1, y1 = source.sample(batch_generator(0, 0, 0), 32, augment=True)
    x2, _ = source.sample(batch_generator(0, 0, 1), 32, augment=True)
    assert np.std(x1 - y1) * 255 == pytest.approx(25, rel=0.03)
    assert not np.array_equal(x1, x2)
    blind = DenoisePatches(flat, 32, sigma_range=(0, 50))
    x, y = blind.sample(batch_generator(0, 0, 0), 256, augment=False)
    per_patch = np.std(x - y, axis=(1, 2)) * 255
    assert per_patch.min() < 5
    assert per_patch.max() > 45


def test_images_smaller_than_a_patch_are_refused_clearly() -> None:
    with pytest.raises(MemNetError, match="at least 64x64"):
        one_image_set("sr", [2], patch=64)


def test_batches_depend_only_on_their_index() -> None:
    source = one_image_set("sr", [2, 3], patch=16)
    options = {"batch_size": 4, "augment": True, "seed": 5, "rank": 0}
    with BatchStream(source, start=0, workers=3, prefetch=6, **options) as stream:  # type: ignore[arg-type]
        batches = [stream.next()[:2] for _ in range(7)]
    with BatchStream(source, start=4, workers=1, **options) as later:  # type: ignore[arg-type]
        resumed = later.next()[:2]
    assert batches[0][0].shape == (4, 1, 16, 16)
    assert torch.equal(batches[4][0], resumed[0])
    assert torch.equal(batches[4][1], resumed[1])
    assert not torch.equal(batches[0][0], batches[1][0])
    other_rank = BatchStream(source, start=4, workers=1, **{**options, "rank": 1})  # type: ignore[arg-type]
    assert not torch.equal(other_rank.next()[0], resumed[0])
    other_rank.close()


def test_a_failing_batch_is_raised_in_the_consumer() -> None:
    class Broken(PatchSource):
        def sample(self, rng, batch, augment):  # type: ignore[no-untyped-def]
            raise RuntimeError("disk on fire")

    broken = Broken([np.zeros((20, 20), np.uint8)], 8)
    stream = BatchStream(broken, batch_size=2, augment=False, seed=0, rank=0, start=0)
    with pytest.raises(RuntimeError, match="disk on fire"):
        stream.next()


def test_validation_uses_the_protocol_degradation(tmp_path: Path) -> None:
    spec = ValidationSpec(sets=[ValidationSet(set="synthetic", levels=[2, 3], max_images=2)])
    validation = build_validation(spec, "sr", data_root=None, synthetic=SyntheticSpec(size=64))
    seen: list[np.ndarray] = []

    def record(network_input: np.ndarray) -> np.ndarray:
        seen.append(network_input)
        return network_input

    scores = validation.evaluate(record)
    assert [f"{s.set}/{s.label}" for s in scores] == ["synthetic/x2", "synthetic/x3"]
    assert (validation.cells, validation.images) == (2, 4)
    bench = validation.sets[0][0]
    truth = SuperResolution(3).ground_truth(bench.images[0])
    assert truth.shape == (63, 63)  # modcrop to the scale
    np.testing.assert_array_equal(seen[2], SuperResolution(3).degrade(truth, None))  # type: ignore[arg-type]
    noisy = build_validation(
        ValidationSpec(seed=7, sets=[ValidationSet(set="synthetic", levels=[50], max_images=2)]),
        "denoise",
        data_root=None,
        synthetic=SyntheticSpec(size=64),
    )
    seen.clear()
    noisy.evaluate(record)
    # each image's noise comes from (seed, image name), the convention of `memnet eval`
    first, second = seen
    clean = noisy.sets[0][0].images
    rng = np.random.default_rng([7, zlib.crc32(b"synthetic/0")])
    noise = 50 / 255 * rng.standard_normal(clean[0].shape)
    np.testing.assert_array_equal(first, clean[0] / 255 + noise)
    assert not np.array_equal(first - clean[0] / 255, second - clean[1] / 255)


@pytest.mark.datasets
def test_training_sources_resolve_from_the_datasets(datasets: Path) -> None:
    data = DataSpec(sources=["T91"], max_images=3)
    source = build_training_set(TaskSpec(kind="sr", levels=[2, 4]), data, data_root=datasets)
    assert len(source) == 6
    items = build_validation(
        ValidationSpec(sets=[ValidationSet(set="Set5", levels=[2], max_images=2)]),
        "sr",
        data_root=datasets,
        synthetic=SyntheticSpec(),
    )
    bench, levels = items.sets[0]
    assert (bench.name, levels, len(bench)) == ("Set5", (2.0,), 2)
