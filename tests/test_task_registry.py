"""A task is one class: the registry, its attributes, and a new task picked up everywhere."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

import memnet
from memnet.cli import main
from memnet.inference.pictures import resolve_color
from memnet.tasks import (
    TASKS,
    Deblock,
    Denoise,
    SuperResolution,
    Task,
    _required_attributes,
    baseline_methods,
    level_names,
    make_task,
    register_task,
    task_class,
    task_classes,
    task_kinds,
)


@dataclass(frozen=True)
class Darken(Task):
    """The picture `gain` times darker: a task made up for this test, known nowhere else."""

    gain: float
    kind: ClassVar[str] = "darken"
    title: ClassVar[str] = "brightening"
    protocol: ClassVar[str] = "Y channel; input = clean / gain; output unrounded; no shave"
    scoring: ClassVar[str] = "Y channel, output unrounded, no shave"
    level_name: ClassVar[str] = "gain"
    level_option: ClassVar[str] = "gains"
    level_help: ClassVar[str] = "how many times darker the input is"
    level_title: ClassVar[str] = "Gain"
    default_level: ClassVar[float] = 1.5
    compare_level: ClassVar[float] = 2.5
    default_color: ClassVar[str] = "rgb"
    column_title: ClassVar[str] = "g={:g}"
    benchmark_sets: ClassVar[tuple[str, ...]] = ("Set5",)
    benchmark_levels: ClassVar[tuple[float, ...]] = (1.5, 2)
    auto_format: ClassVar[str | None] = "png"
    input_name: ClassVar[str] = "dark input"

    @classmethod
    def check_level(cls, level: float) -> None:
        if not level > 1:
            raise ValueError(f"gain must be greater than 1, got {level:g}")

    @property
    def label(self) -> str:
        return f"g{self.gain:g}"

    def degrade(self, clean: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.float64]:
        return self.ground_truth(clean).astype(np.float64) / 255.0 / self.gain

    def degrade_picture(
        self, clean: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        return clean / self.gain


@pytest.fixture
def darken() -> Iterator[type[Darken]]:
    register_task(Darken)
    try:
        yield Darken
    finally:
        del TASKS[Darken.kind]


def picture(path: Path, size: tuple[int, int] = (44, 40)) -> Path:
    rng = np.random.default_rng(11)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------


def test_every_registered_task_sets_every_attribute() -> None:
    required = _required_attributes()
    # what the modules read from the classes; each must be declared on Task
    assert {"kind", "level_name", "default_level", "default_color", "column_title"} <= set(required)
    assert task_classes() == (SuperResolution, Denoise, Deblock)
    for cls in task_classes():
        assert task_class(cls.kind) is cls
        for name in required:
            assert hasattr(cls, name), (cls.__name__, name)
        assert cls.level_name in cls.__dataclass_fields__
        task = cls.from_level(cls.default_level)
        assert task.level == cls.default_level
        assert make_task(cls.kind, cls.compare_level).level == cls.compare_level
        for level in cls.benchmark_levels:
            cls.check_level(level)


def test_a_class_lacking_attributes_is_not_registered() -> None:
    @dataclass(frozen=True)
    class Blur(Task):
        radius: float
        kind: ClassVar[str] = "blur"
        level_name: ClassVar[str] = "radius"

    with pytest.raises(TypeError, match="Blur does not set title, protocol, scoring"):
        register_task(Blur)  # type: ignore[type-abstract]

    @dataclass(frozen=True)
    class Misnamed(Darken):
        level_name: ClassVar[str] = "radius"

    with pytest.raises(TypeError, match="no dataclass field 'radius'"):
        register_task(Misnamed)

    @dataclass(frozen=True)
    class Impostor(Darken):
        kind: ClassVar[str] = "sr"

    with pytest.raises(TypeError, match="'sr' is taken by SuperResolution"):
        register_task(Impostor)
    assert task_kinds() == ("sr", "denoise", "jpeg")


def test_the_built_in_tasks_keep_their_documented_defaults() -> None:
    assert task_kinds() == ("sr", "denoise", "jpeg")
    assert level_names() == ("scale", "sigma", "quality")
    assert baseline_methods() == ("bicubic", "identity")
    table = {
        cls.kind: (cls.level_option, cls.baseline, cls.default_color, cls.blind, cls.auto_format)
        for cls in task_classes()
    }
    assert table == {
        "sr": ("scales", "bicubic", "y", False, None),
        "denoise": ("sigmas", "identity", "rgb", True, None),
        "jpeg": ("qualities", "identity", "ycbcr", True, "png"),
    }
    assert [cls.default_level for cls in task_classes()] == [2.0, 50.0, 10.0]
    assert [cls.compare_level for cls in task_classes()] == [3.0, 50.0, 10.0]
    assert [cls.benchmark_sets for cls in task_classes()] == [
        ("Set5", "Set14", "BSD100"),
        ("BSD68", "Set12"),
        ("Classic5", "LIVE1"),
    ]
    assert make_task("jpeg", 20.0) == Deblock(20)


# --------------------------------------------------------------------------------------------
# a new task is picked up by the CLI, the API, the benchmark and the server
# --------------------------------------------------------------------------------------------


def test_restore_takes_a_new_task_from_its_class(
    darken: type[Darken], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--gain GAIN how many times darker the input is (the network is blind)" in help_text
    assert "darken → rgb" in help_text
    assert "{sr,denoise,jpeg,darken}" in help_text

    source = picture(tmp_path / "in" / "dim.jpg")
    out = tmp_path / "out"
    # no released model exists for it: the one default lookup says so, as for every command
    code = main(["restore", "-i", str(source.parent), "-o", str(out), "--task", "darken"])
    assert code == 1
    assert "no released model is the default for task 'darken'" in capsys.readouterr().err
    code = main(
        [
            "restore",
            "-i",
            str(source.parent),
            "-o",
            str(out),
            "--task",
            "darken",
            "--model",
            "identity",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "(identity, darken g1.5)" in captured.out  # its default level and label
    restored = out / "dim.png"  # its auto_format: not written as JPEG again
    with Image.open(source) as given, Image.open(restored) as result:
        np.testing.assert_array_equal(np.asarray(given), np.asarray(result))


def test_eval_takes_a_new_task_from_its_class(
    darken: type[Darken], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--gains LIST darken: how many times darker the input is (default 1.5,2)" in help_text

    folder = tmp_path / "mine"
    picture(folder / "a.png")
    picture(folder / "b.png", (50, 46))
    common = ["eval", "--task", "darken", "--sets", str(folder), "--quiet"]
    assert main([*common, "--method", "identity"]) == 0
    table = capsys.readouterr().out
    assert "| set | g=1.5 | g=2 |" in table  # its benchmark levels and column title
    assert "— darken, identity (Y channel, output unrounded, no shave)" in table

    assert main([*common, "--method", "bicubic"]) == 1
    assert "use 'identity'" in capsys.readouterr().err
    assert main([*common, "--method", "identity", "--sigmas", "3"]) == 1
    assert "for --task darken use --gains" in capsys.readouterr().err


def test_compare_takes_a_new_task_from_its_class(
    darken: type[Darken], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = picture(tmp_path / "clean.png", (64, 64))
    out = tmp_path / "compare.png"
    args = ["compare", "-i", str(clean), "-o", str(out), "--task", "darken", "--model", "identity"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "dark input (g2.5)" in printed  # its compare level, label and input name
    assert out.is_file()


def test_the_api_takes_a_new_task_from_its_class(darken: type[Darken]) -> None:
    restorer = memnet.load("identity", task="darken")
    assert restorer.make_task() == Darken(1.5)  # blind: its default level
    assert memnet.load("identity", task="darken", gain=2).make_task() == Darken(2.0)
    assert restorer.make_task(gain=3, scale=4) == Darken(3.0)  # other tasks' levels ignored
    assert resolve_color("auto", Darken(2.0)) == "rgb"
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(restorer(pixels, gain=2), pixels)
    with pytest.raises(memnet.MemNetError, match="gain must be greater than 1"):
        restorer(pixels, gain=0.5)
    with pytest.raises(TypeError, match="'radius'"):
        memnet.load("identity", task="darken", radius=2)


def test_the_server_takes_a_new_task_from_its_class(darken: type[Darken]) -> None:
    from memnet.serving.catalogue import Catalogue

    catalogue = Catalogue(("identity",))
    options = catalogue.options(
        filename="dim.jpg",
        task="darken",
        model=None,
        levels={},
        color="auto",
        output_format="auto",
    )
    assert options.task == Darken(1.5)
    assert options.level == {"gain": 1.5}
    assert options.filename == "dim_g1.5.png"


def test_the_server_api_and_page_offer_a_new_task_from_its_class(darken: type[Darken]) -> None:
    pytest.importorskip("fastapi", reason="needs the serve extra: pip install -e '.[serve]'")
    pytest.importorskip("httpx2", reason="needs the serve extra (httpx2 for the test client)")
    from fastapi.testclient import TestClient

    from memnet.serving.app import create_app
    from memnet.serving.settings import ServeSettings

    settings = ServeSettings(models=("identity",), workers=1, queue_size=2)
    with TestClient(create_app(settings)) as client:
        listed = client.get("/v1/models").json()
        offered = {task["task"]: task for task in listed["tasks"]}
        assert list(offered) == ["sr", "denoise", "jpeg", "darken"]
        assert offered["darken"]["title"] == "brightening"
        assert offered["darken"]["level"]["field"] == "gain"
        assert offered["darken"]["level"]["title"] == "Gain"
        assert [c["label"] for c in offered["sr"]["level"]["choices"]] == ["×2", "×3", "×4"]
        # the level is a documented form field of /v1/restore, made from the class
        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/v1/restore"]["post"]["requestBody"]["content"]
        form = next(iter(body.values()))["schema"]
        fields = schema["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]["properties"]
        assert {"scale", "sigma", "quality", "gain"} <= set(fields)
        assert "how many times darker" in fields["gain"]["description"]
        buffer = io.BytesIO()
        Image.fromarray(np.full((24, 20, 3), 40, np.uint8)).save(buffer, "PNG")
        answer = client.post(
            "/v1/restore",
            files={"image": ("dim.png", buffer.getvalue(), "image/png")},
            data={"task": "darken", "gain": "2"},
        )
        assert answer.status_code == 200, answer.text
        assert "dim_g2.png" in answer.headers["content-disposition"]
        bad = client.post(
            "/v1/restore",
            files={"image": ("dim.png", buffer.getvalue(), "image/png")},
            data={"task": "darken", "gain": "0.5"},
        )
        assert bad.status_code == 400
        assert "gain must be greater than 1" in bad.json()["error"]
