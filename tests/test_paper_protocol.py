"""The authors' protocol where memnet's recipes once differed from it.

JPEG patches flipped/rotated before compression, MATLAB rgb2gray for colour images in denoising,
the released model's w_m start, and the paper recipes' fp32 / synced-BatchNorm settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from memnet.evaluation.benchmark import load_set
from memnet.imaging.color import rgb2gray, rgb2ycbcr
from memnet.imaging.jpeg import jpeg_roundtrip
from memnet.model import MemNet
from memnet.tasks import Deblock, Denoise, SuperResolution, make_task
from memnet.training.batches import batch_generator
from memnet.training.patches import CompressedViews, build_training_set
from memnet.training.recipe import DataSpec, SyntheticSpec, TaskSpec, load_recipe
from memnet.training.synthetic import synthetic_images

CONFIGS = Path(__file__).parents[1] / "configs"


def dihedral(image: np.ndarray, op: int) -> np.ndarray:
    return np.rot90(image[:, ::-1] if op & 4 else image, op & 3)


def jpeg_source(size: int, patch: int, images: int = 1) -> tuple[CompressedViews, list[np.ndarray]]:
    spec = SyntheticSpec(images=images, size=size, seed=11)
    data = DataSpec(sources=["synthetic"], synthetic=spec, patch_size=patch)
    source = build_training_set(TaskSpec(kind="jpeg", levels=[10]), data)
    assert isinstance(source, CompressedViews)
    return source, synthetic_images(spec)


# -- JPEG: augmentation before compression -----------------------------------------------------


def test_a_whole_image_patch_is_the_compression_of_the_flipped_clean_image() -> None:
    # patch = image: each patch is a whole flipped/rotated image, so its input must be exactly
    # JPEG(flipped clean image), which a flip after compression is not for a transpose
    source, (truth,) = jpeg_source(size=64, patch=64)
    seen = set()
    for index in range(48):
        x, y = source.sample(batch_generator(0, 0, index), 1, augment=True)
        op = next(k for k in range(8) if np.array_equal(y[0] * 255, dihedral(truth, k)))
        seen.add(op)
        clean = np.ascontiguousarray(dihedral(truth, op))
        expected = jpeg_roundtrip(clean, 10).astype(np.float32) / 255
        np.testing.assert_array_equal(x[0], expected, err_msg=f"flip/rotation {op}")
    assert seen == set(range(8))


def test_transposes_do_not_commute_with_the_codec() -> None:
    # why the order matters: a flip after compression gives another image than before it
    truth = synthetic_images(SyntheticSpec(images=1, size=64, seed=11))[0]
    after = dihedral(jpeg_roundtrip(truth, 10), 1)
    before = jpeg_roundtrip(np.ascontiguousarray(dihedral(truth, 1)), 10)
    assert (after != before).mean() > 0.05


def test_smaller_patches_are_cut_from_the_compressed_view_at_the_same_place() -> None:
    source, (truth,) = jpeg_source(size=64, patch=24)
    p = 24
    x, y = source.sample(batch_generator(3, 0, 0), 32, augment=True)
    for i in range(len(y)):
        matched = False
        for op in range(8):
            view = dihedral(truth, op)
            coded = jpeg_roundtrip(np.ascontiguousarray(view), 10)
            windows = sliding_window_view(view, (p, p))
            hits = np.argwhere((windows == (y[i] * 255).astype(np.uint8)).all(axis=(2, 3)))
            for top, left in hits:
                if np.array_equal(x[i] * 255, coded[top : top + p, left : left + p]):
                    matched = True
        assert matched, f"patch {i}: its input is no window of a compressed flipped image"


def test_a_window_is_found_under_every_flip_of_a_non_square_image() -> None:
    from memnet.training.patches import _dihedral, _window_under

    image = np.arange(13 * 21).reshape(13, 21)
    for op in range(8):
        for top, left in [(0, 0), (8, 0), (0, 16), (3, 7), (8, 16)]:
            row, col = _window_under(op, top, left, 13, 21, 5)
            np.testing.assert_array_equal(
                _dihedral(image, op)[row : row + 5, col : col + 5],
                _dihedral(image[top : top + 5, left : left + 5], op),
            )


def test_without_augment_only_the_upright_image_is_compressed() -> None:
    spec = SyntheticSpec(images=1, size=48, seed=11)
    data = DataSpec(sources=["synthetic"], synthetic=spec, patch_size=48, augment=False)
    source = build_training_set(TaskSpec(kind="jpeg", levels=[10]), data)
    assert isinstance(source, CompressedViews)
    assert [len(views) for views in source.views] == [1]


# -- denoising: MATLAB rgb2gray ------------------------------------------------------------------

# (R, G, B) and MATLAB's rgb2gray of them, worked out by hand:
# 0.298936021293776 R + 0.587043074451121 G + 0.114020904255103 B, rounded half away from zero.
GRAY_BY_HAND = [
    ((255, 0, 0), 76),  # 76.2287
    ((0, 255, 0), 150),  # 149.6960
    ((0, 0, 255), 29),  # 29.0753
    ((100, 150, 200), 141),  # 29.8936 + 88.0565 + 22.8042 = 140.7543
    ((255, 255, 255), 255),  # the three weights add up to 1: white stays 255 (studio Y: 235)
    ((0, 0, 0), 0),  # black stays 0 (studio Y: 16)
    ((1, 1, 1), 1),
    ((3, 1, 4), 2),  # 0.8968 + 0.5870 + 0.4561 = 1.9399
]


def hand_picture() -> np.ndarray:
    return np.array([[rgb for rgb, _ in GRAY_BY_HAND]], dtype=np.uint8)


def test_rgb2gray_matches_matlab_by_hand() -> None:
    gray = rgb2gray(hand_picture())
    assert gray.dtype == np.uint8
    assert gray[0].tolist() == [value for _, value in GRAY_BY_HAND]


def test_the_denoising_task_makes_colour_gray_by_rgb2gray_and_the_others_take_y() -> None:
    picture = hand_picture()
    expected = [value for _, value in GRAY_BY_HAND]
    assert Denoise(25).one_channel(picture)[0].tolist() == expected
    y = rgb2ycbcr(picture)[..., 0]
    np.testing.assert_array_equal(SuperResolution(2).one_channel(picture), y)
    np.testing.assert_array_equal(Deblock(10).one_channel(picture), y)
    assert y[0, 4] == 235  # studio range: not what the denoising script scores


def test_eval_and_training_read_colour_files_through_the_task(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    rgb[0, :8] = hand_picture()[0]
    folder = tmp_path / "Colour"
    folder.mkdir()
    Image.fromarray(rgb).save(folder / "a.png")
    gray, y = rgb2gray(rgb), rgb2ycbcr(rgb)[..., 0]
    np.testing.assert_array_equal(load_set(str(folder), kind="denoise").images[0], gray)
    np.testing.assert_array_equal(load_set(str(folder), kind="sr").images[0], y)
    data = DataSpec(sources=[str(folder)], patch_size=40, augment=False)
    training = build_training_set(TaskSpec(kind="denoise", levels=[25]), data)
    np.testing.assert_array_equal(training.truths[0], gray)
    assert make_task("denoise", 25).one_channel(rgb).shape == (40, 40)


# -- the branch weights' start ------------------------------------------------------------------


def test_branch_weights_start_at_one_as_caffe_or_at_one_over_m() -> None:
    caffe = MemNet(3, 2, 8, branch_weight_init="caffe")
    mean = MemNet(3, 2, 8)
    assert torch.equal(caffe.branch_weights.detach(), torch.ones(3))
    assert torch.equal(mean.branch_weights.detach(), torch.full((3,), 1 / 3))
    with pytest.raises(ValueError, match="mean, caffe"):
        MemNet(3, 2, 8, branch_weight_init="ones")  # type: ignore[arg-type]


def test_the_recipe_chooses_the_branch_weight_start(tmp_path: Path) -> None:
    from memnet.training.environment import Processes
    from memnet.training.trainer import RunOptions, Trainer

    recipe = load_recipe(
        CONFIGS / "smoke.yaml", ["model.branch_weight_init=caffe", "train.device=cpu"]
    )
    trainer = Trainer(recipe, RunOptions(out=tmp_path / "run", quiet=True), Processes())
    assert torch.equal(
        trainer.model.branch_weights.detach(), torch.ones(recipe.model.network_config().blocks)
    )
    assert not (tmp_path / "run").exists()  # building a trainer writes nothing


# -- the paper recipes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sr", "denoise", "jpeg"])
def test_paper_recipes_are_faithful(name: str) -> None:
    recipe = load_recipe(CONFIGS / f"{name}.yaml")
    assert recipe.train.amp == "off"  # the authors trained in fp32
    assert recipe.train.sync_batchnorm  # one batch of 32, one set of statistics
    assert recipe.model.branch_weight_init == "caffe"  # every w_m starts at 1
    assert recipe.data.augment


def test_a_bare_yaml_off_means_fp32(tmp_path: Path) -> None:
    text = (CONFIGS / "smoke.yaml").read_text()
    path = tmp_path / "r.yaml"
    path.write_text(text.replace("train:\n", "train:\n  amp: off\n", 1))
    assert load_recipe(path).train.amp == "off"
