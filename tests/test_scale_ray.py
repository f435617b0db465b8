"""`memnet restore --ray` on a local Ray instance with 2 CPUs started here (memnet[ray]).

Ray takes tens of seconds to start on a busy 2-core machine, so one instance serves the module
and the inputs are few and small."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ray = pytest.importorskip("ray", reason="scale-out needs the ray extra (Ray Data)")
pytest.importorskip("ray.data", reason="scale-out needs the ray extra (Ray Data)")

from memnet.cli import main  # noqa: E402
from memnet.fsutil import stale_temporaries  # noqa: E402
from memnet.inference.folders import collect_inputs, plan_outputs  # noqa: E402
from memnet.model import MemNet  # noqa: E402
from memnet.scale import RayOptions, restore_on_ray  # noqa: E402
from memnet.scale.ray_job import FAILED_MANIFEST  # noqa: E402
from memnet.scale.worker import WorkerSettings  # noqa: E402
from memnet.weights.files import save_weights  # noqa: E402

pytestmark = pytest.mark.ray
IMAGES = 6
ACTOR_TITLE = b"ray::MapWorker"  # the process title Ray Data gives its pool actors


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Images (one in a sub-folder), a weights file, and their single-machine outputs."""
    root = tmp_path_factory.mktemp("scale")
    rng = np.random.default_rng(3)
    inputs = root / "in"
    for index in range(IMAGES):
        folder = inputs / "sub" if index == 0 else inputs
        folder.mkdir(parents=True, exist_ok=True)
        data = rng.integers(0, 256, (96, 80, 3), dtype=np.uint8)
        Image.fromarray(data).save(folder / f"p{index}.png")
    weights = root / "w.safetensors"
    save_weights(MemNet(2, 2, 8), weights, {"task": "denoise"})
    single = root / "single"
    command = ["restore", "-i", str(inputs), "-o", str(single), "--recursive"]
    assert main([*command, "--weights", str(weights), "-q"]) == 0
    return {"root": root, "inputs": inputs, "weights": weights, "single": single}


def outputs(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _pool_actor_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if handle.read().startswith(ACTOR_TITLE):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _kill_an_actor_once_a_file_is_done(job: threading.Thread, out: Path) -> int:
    """SIGKILL one pool actor as soon as the first output exists; the number of outputs then."""
    while job.is_alive():
        written = list(out.rglob("*.png")) if out.exists() else []
        pids = _pool_actor_pids()
        if written and pids:
            os.kill(pids[0], signal.SIGKILL)
            return len(written)
        time.sleep(0.02)
    raise AssertionError("the job ended before a worker could be killed")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's actor processes in /proc")
def test_ray_job_matches_one_machine_survives_a_killed_worker_reports_failures_and_resumes(
    local_ray: None, tree: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One Ray job checks it all (each job costs tens of seconds of actor start-up here)."""
    inputs = tmp_path / "in"
    for name, data in outputs(tree["inputs"]).items():
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_bytes(data)
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    command = ["restore", "-i", str(inputs), "-o", str(out), "--recursive"]
    command += ["--weights", str(tree["weights"]), "--ray", "--workers", "2", "-q"]
    codes: list[int] = []
    job = threading.Thread(target=lambda: codes.append(main(command)))
    job.start()
    outputs_when_killed = _kill_an_actor_once_a_file_is_done(job, out)
    job.join()
    assert outputs_when_killed < IMAGES  # the kill really came mid-job

    assert codes == [1]  # the broken file fails; every other file is restored exactly once
    assert outputs(out) == outputs(tree["single"])  # same names, same bytes as one machine
    assert not [p for p in out.rglob(".*.tmp")]  # no temporary left by the killed worker
    failed = [json.loads(line) for line in (out / FAILED_MANIFEST).read_text().splitlines()]
    assert [entry["path"] for entry in failed] == [str(inputs / "broken.png")]
    assert "broken.png" in failed[0]["reason"]
    assert f"{IMAGES} images restored, 1 failed" in capsys.readouterr().err

    # Once the broken file is gone, a rerun finds every output complete: nothing is redone
    # (no Ray job at all) and the list of failures, now empty, is removed.
    (inputs / "broken.png").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert main(command[:-1]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert f"{IMAGES} already complete" in capsys.readouterr().out
    assert not (out / FAILED_MANIFEST).exists()


def test_a_job_whose_outputs_are_all_complete_needs_no_cluster(tree: dict[str, Path]) -> None:
    """Every output exists already: all are skipped and Ray is not even contacted."""
    sources, base = collect_inputs(str(tree["inputs"]), recursive=True)
    jobs = plan_outputs(sources, base, str(tree["single"]), suffix="", overwrite=True)
    settings = WorkerSettings({"name_or_path": str(tree["weights"]), "task": "denoise"})
    manifest = tree["root"] / "failed.jsonl"
    report = restore_on_ray(jobs, settings, RayOptions(workers=2), failed_manifest=manifest)
    assert set(report.skipped) == set(jobs)
    assert len(report.skipped) == len(jobs) == IMAGES
    assert (report.batch.written, report.batch.failed, report.workers) == ([], [], 0)
    assert not manifest.exists()
    assert all(not stale_temporaries(job.target) for job in jobs)


def test_a_worker_reports_the_warning_the_command_would_print(
    tree: dict[str, Path], tmp_path: Path
) -> None:
    """A transparent picture written as JPEG loses its alpha: the actor's result row carries the
    warning `memnet restore` prints on one machine, and the driver collects it (no Ray needed:
    an actor is a plain callable)."""
    from memnet.inference.folders import BatchReport, Job
    from memnet.scale.ray_job import _collect
    from memnet.scale.worker import RestoreWorker

    rgba = np.random.default_rng(4).integers(0, 256, (40, 36, 4), dtype=np.uint8)
    source, opaque = tmp_path / "clear.png", tmp_path / "opaque.png"
    Image.fromarray(rgba).save(source)
    Image.fromarray(rgba[..., :3]).save(opaque)
    worker = RestoreWorker(WorkerSettings({"name_or_path": str(tree["weights"])}))
    jobs = [Job(source, tmp_path / "clear.jpg"), Job(opaque, tmp_path / "opaque.jpg")]
    rows = worker(
        {"source": [str(j.source) for j in jobs], "target": [str(j.target) for j in jobs]}
    )
    assert rows["status"] == ["restored", "restored"]
    assert rows["reason"] == [
        f"warning: {source}: its alpha channel is dropped (.jpg has none); "
        "--ext png, webp or tiff keeps it",
        "",
    ]
    batch = BatchReport()
    lines = [dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)]
    _collect(batch, jobs, lines)
    assert batch.warnings == [rows["reason"][0]]
    assert batch.written == jobs
