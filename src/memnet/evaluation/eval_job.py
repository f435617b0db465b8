"""A `memnet eval` run: one method scored on benchmark sets at several levels, reported.

From the options of one run this parses the levels, refuses options that cannot apply before any
image is read, builds the method (a baseline, or a network in an inference Restorer), runs
memnet.evaluation.benchmark.evaluate with a progress bar and writes the table and files. The
command line only fills `EvalOptions`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memnet.errors import MemNetError
from memnet.tasks import Task, task_class, task_classes

__all__ = ["EvalOptions", "build_method", "default_levels", "parse_levels", "run_eval"]


@dataclass(frozen=True)
class EvalOptions:
    """What one evaluation asks for; the names are `memnet eval`'s options."""

    task: str
    levels: Mapping[str, str | None] = field(default_factory=dict)  # level option → its LIST
    sets: str | None = None
    method: str | None = None
    model: str | None = None
    weights: Path | None = None
    unsafe_load: bool = False
    data_root: Path | None = None
    out: Path | None = None
    save_images: bool = False
    seed: int = 0
    tile: int | None = None
    tile_pad: int | None = None
    authors_tiles: bool = False
    device: str = "auto"
    dtype: str = "fp32"
    self_ensemble: bool = False
    quiet: bool = False


def default_levels(cls: type[Task]) -> str:
    """A task's benchmark levels as the LIST its option takes, e.g. '2,3,4'."""
    return ",".join(f"{level:g}" for level in cls.benchmark_levels)


def parse_levels(text: str, option: str) -> list[float]:
    """'2,3,4' → [2.0, 3.0, 4.0], with a one-line error naming the option."""
    levels: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            levels.append(float(item))
        except ValueError:
            raise MemNetError(f"--{option}: {item!r} is not a number") from None
    if not levels:
        raise MemNetError(f"--{option}: no values given")
    return levels


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "method"


NETWORK_OPTIONS = (
    ("tile", "--tile"),
    ("tile_pad", "--tile-pad"),
    ("authors_tiles", "--authors-tiles"),
    ("self_ensemble", "--self-ensemble"),
)


def _check_network_options(options: EvalOptions, has_network: bool) -> None:
    """Refuse engine options that cannot apply, before any image is read."""
    given = [
        option for key, option in NETWORK_OPTIONS if getattr(options, key) not in (None, False)
    ]
    if not has_network:
        if given or options.dtype != "fp32":
            option = given[0] if given else "--dtype"
            raise MemNetError(f"{option} applies to a network (--model or --weights), not --method")
        return
    if options.authors_tiles and (options.tile is not None or options.tile_pad is not None):
        other = "--tile" if options.tile is not None else "--tile-pad"
        raise MemNetError(f"{other} and --authors-tiles cannot be combined")
    if options.tile is not None and options.tile < 0:
        raise MemNetError("--tile must be 0 (whole image) or a positive size")
    if options.tile_pad is not None and options.tile_pad < 0:
        raise MemNetError("--tile-pad must be non-negative")


def build_method(options: EvalOptions) -> tuple[Callable[..., Any], str, dict[str, Any]]:
    """(method callable, its name, details for the JSON summary) from the options."""
    from memnet import devices
    from memnet.evaluation.benchmark import baseline
    from memnet.inference.engine import Restorer
    from memnet.weights import zoo
    from memnet.weights.loading import load_model

    # a device that cannot work is refused even where no network runs, as memnet.load does
    device = devices.resolve_device(options.device)

    spec: str | Path
    if options.model is not None:
        spec = zoo.get(options.model).name  # a released model, not a path
    else:
        spec = options.method or options.weights or zoo.default_model(options.task).name
    _check_network_options(options, has_network=options.method is None)
    loaded = load_model(spec, unsafe_load=options.unsafe_load)
    if loaded.network is None:
        return baseline(loaded.name, options.task), loaded.name, {}
    assert loaded.path is not None  # every network is read from a file
    if loaded.network.config.in_channels != 1:
        raise MemNetError(
            f"{loaded.path}: a model with {loaded.network.config.in_channels} input channels "
            "cannot be evaluated by the one-channel protocol"
        )
    if loaded.task is not None and loaded.task != options.task and not options.quiet:
        print(
            f"memnet eval: note: {loaded.path.name} was trained for task {loaded.task!r}, "
            f"evaluating it on {options.task!r}",
            file=sys.stderr,
        )
    details: dict[str, Any] = (
        {"weights": str(options.weights)} if options.weights is not None else {"model": loaded.name}
    )
    tile, tile_pad = options.tile, options.tile_pad
    if options.authors_tiles:
        from memnet.evaluation.authors_tiles import authors_tiling

        tile, tile_pad = authors_tiling(options.task)
        details["tiling"] = "authors"
    restorer = Restorer(
        loaded.network,
        device=device,
        tile=tile,
        tile_pad=tile_pad,
        dtype=options.dtype,
        self_ensemble=options.self_ensemble,
    )
    details.update(
        sha256=loaded.sha256,
        config=loaded.network.config.to_dict(),
        device=str(device),
        tile=restorer.tile,
        tile_pad=restorer.tile_pad,
        dtype=options.dtype,
        self_ensemble=options.self_ensemble,
    )
    name = loaded.name if options.weights is None else Path(options.weights).stem
    return restorer, name, details


def run_eval(options: EvalOptions) -> None:
    """Score the method, print the table to stdout and write the files under `out`."""
    from tqdm import tqdm

    from memnet.evaluation.benchmark import evaluate, load_set, make_tasks

    task: str = options.task
    chosen = task_class(task)
    option = chosen.level_option
    for cls in task_classes():
        if cls is not chosen and options.levels.get(cls.level_option) is not None:
            raise MemNetError(
                f"--{cls.level_option} applies to --task {cls.kind}; for --task {task} use --{option}"
            )
    levels = parse_levels(options.levels.get(option) or default_levels(chosen), option)
    tasks = make_tasks(task, levels)  # bad levels are refused before any image is read
    set_names = _split(options.sets or ",".join(chosen.benchmark_sets))
    if not set_names:
        raise MemNetError("--sets: no set given")
    if options.save_images and options.out is None:
        raise MemNetError("--save-images needs --out DIR to write the images to")

    if options.out is not None:
        # Fail before the work, not after it, when the results cannot be written.
        try:
            options.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MemNetError(
                f"--out {options.out}: cannot create folder ({error.strerror or error})"
            ) from None

    method, method_name, details = build_method(options)
    sets = [load_set(name, options.data_root, kind=task) for name in set_names]
    stem = f"{task}-{_slug(method_name)}"
    save_dir = options.out / stem if options.out is not None and options.save_images else None

    total = sum(len(s) for s in sets) * len(tasks)
    with tqdm(
        total=total,
        unit="img",
        desc=f"eval {task} {method_name}",
        file=sys.stderr,
        disable=options.quiet,
        dynamic_ncols=True,
    ) as bar:

        def advance(row: Any) -> None:
            bar.set_postfix_str(f"{row.set} {row.label}", refresh=False)
            bar.update(1)

        report = evaluate(
            task,
            levels,
            sets,
            method,
            method_name=method_name,
            seed=options.seed,
            save_dir=save_dir,
            on_image=advance,
        )
    report.details.update(details)
    print(report.markdown(), end="")
    if options.out is not None:
        files = report.write(options.out, stem)
        if not options.quiet:
            written = ", ".join(str(f) for f in files)
            extra = f" and images under {save_dir}" if save_dir is not None else ""
            print(f"memnet eval: wrote {written}{extra}", file=sys.stderr)
