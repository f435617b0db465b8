"""memnet's own CPU kernels (kernels/*.cpp): built on first use, loaded next to PyTorch.

The kernels are plain C++ with vector intrinsics and OpenMP, no PyTorch headers, written once
against kernels/simd.h and built for the widest vectors the CPU has: AVX-512 (16 floats) where
it has AVX-512F, else AVX2 + FMA (8 floats); both builds give the same bits, and
`MEMNET_ISA=avx2` picks the AVX2 one on an AVX-512 CPU (to compare them). This
machine's compiler builds them in a couple of seconds, once, into memnet's cache folder
($MEMNET_CACHE_DIR, else $XDG_CACHE_HOME/memnet or ~/.cache/memnet), one folder per source,
flags, compiler and torch build, written atomically so that concurrent first runs are safe.
The library is loaded with ctypes after torch, so its OpenMP calls share PyTorch's own runtime
(the libgomp.so.1 torch has already loaded) and its pool of threads. Where there is no compiler,
no AVX2/FMA or no Linux, `library()` is None and memnet runs PyTorch's operators instead;
`MEMNET_NATIVE=0` asks for that everywhere.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import torch

__all__ = ["SOURCES", "cache_folder", "isa", "library", "status", "vector_lanes"]

_KERNELS = Path(__file__).parent / "kernels"
SOURCES = tuple(sorted(_KERNELS.glob("*.cpp")))
_HEADERS = tuple(sorted(_KERNELS.glob("*.h")))
_COMPILER_FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
# Each instruction set a build can target: the CPU flags it needs and the compiler's.
_ISA_FLAGS = {
    "avx2": (("avx2", "fma"), ["-mavx2", "-mfma"]),
    "avx512": (("avx2", "fma", "avx512f"), ["-mavx2", "-mfma", "-mavx512f", "-DMEMNET_AVX512"]),
}
_ISA_NAMES = {"avx2": "AVX2", "avx512": "AVX-512"}
_I64, _PTR, _INT = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
_SPLIT_ROWS = (_PTR, _PTR, _I64)  # rows in two runs: the first run, the second, rows in the first
# Every exported function: its argument types (all return an int64 or an int status).
_SIGNATURES = {
    # x, x_second, x_split, n, height, width, C, pad_top, pad_bottom, scale, shift, U, K, bias,
    # add, add_second, add_split, y, y_second, y_split, relu, threads, block
    "memnet_winograd_conv": (
        _INT,
        [
            *_SPLIT_ROWS,
            *([_I64] * 6),
            *(_PTR, _PTR, _PTR, _I64, _PTR),
            *_SPLIT_ROWS,
            *_SPLIT_ROWS,
            *(_INT, _INT, _I64),
        ],
    ),
    # x, n, height, width, C, scale, shift, dy, K, dU, threads, block
    "memnet_winograd_weight_grad": (
        _INT,
        [_PTR, _I64, _I64, _I64, _I64, _PTR, _PTR, _PTR, _I64, _PTR, _INT, _I64],
    ),
    "memnet_winograd_block": (_I64, [_I64, _I64, _I64]),
    # U, C, K, packed
    "memnet_winograd_pack": (_INT, [_PTR, _I64, _I64, _PTR]),
    # x, pixels, C, mean, var, threads
    "memnet_bn_stats": (_INT, [_PTR, _I64, _I64, _PTR, _PTR, _INT]),
    # x, pixels, C, scale, shift, y, threads
    "memnet_bn_relu": (_INT, [_PTR, _I64, _I64, _PTR, _PTR, _PTR, _INT]),
    # x, dy, pixels, C, scale, shift, mean, invstd, dx, grad_shift, grad_centered, threads
    "memnet_bn_relu_backward": (
        _INT,
        [_PTR, _PTR, _I64, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, _INT],
    ),
    # x, g, pixels, C, K, scale, shift, mean, invstd, WT, grad_W, dx, grad_shift,
    # grad_centered, threads
    "memnet_gate_share_backward": (
        _INT,
        [_PTR, _PTR, _I64, _I64, _I64, *([_PTR] * 9), _INT],
    ),
    "memnet_vector_lanes": (_INT, []),
    "memnet_gate_share": (_INT, [_PTR, _I64, _I64, _PTR, _PTR, _PTR, _I64, _PTR, _PTR, _INT, _INT]),
    # xs, scales, shifts, Ws, count, pixels, C, K, bias, out, threads
    "memnet_gate_shares": (
        _INT,
        [_PTR, _PTR, _PTR, _PTR, _INT, _I64, _I64, _I64, _PTR, _PTR, _INT],
    ),
}


def cache_folder() -> Path:
    """Where memnet keeps what it builds and measures on this machine."""
    explicit = os.environ.get("MEMNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memnet"


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    lines = (line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags"))
    return set(next(lines, "").split())


def _pick_isa() -> tuple[str | None, str]:
    """The instruction set to build for (None: none usable), and a note on the choice."""
    flags = _cpu_flags()
    usable = [name for name, (needs, _) in _ISA_FLAGS.items() if set(needs) <= flags]
    asked = os.environ.get("MEMNET_ISA", "").lower()
    if asked and asked not in _ISA_FLAGS:
        return None, f"not used: MEMNET_ISA must be one of {', '.join(_ISA_FLAGS)}"
    if asked:
        if asked not in usable:
            return None, f"not used: MEMNET_ISA={asked} but this CPU lacks it"
        return asked, f" (MEMNET_ISA={asked})"
    if not usable:
        return None, "not used: needs Linux on a CPU with AVX2 and FMA"
    return usable[-1], ""


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")


def _flags(isa: str) -> list[str]:
    return [*_COMPILER_FLAGS, *_ISA_FLAGS[isa][1]]


def _library_path(compiler: str, isa: str) -> Path:
    digest = hashlib.sha256()
    for source in (*SOURCES, *_HEADERS):
        digest.update(source.read_bytes())
    for part in (*_flags(isa), compiler, torch.__version__, sys.platform):
        digest.update(part.encode())
    return cache_folder() / "kernels" / digest.hexdigest()[:16] / "libmemnet_kernels.so"


def _build(compiler: str, isa: str, target: Path, sources: Sequence[Path] = SOURCES) -> str | None:
    """Compile the kernels (`sources`: memnet's own, or another version's for a benchmark) to
    `target` (atomically); the compiler's complaint if it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        command = [compiler, *_flags(isa), "-o", str(built), *map(str, sources)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)
        if result.returncode != 0:
            return (result.stderr.strip().splitlines() or ["failed"])[-1]
        os.replace(built, target)
    return None


@cache
def _load() -> tuple[ctypes.CDLL | None, str, str | None]:
    if os.environ.get("MEMNET_NATIVE", "1") == "0":
        return None, "off (MEMNET_NATIVE=0)", None
    if not sys.platform.startswith("linux"):
        return None, "not used: needs Linux on a CPU with AVX2 and FMA", None
    isa, note = _pick_isa()
    if isa is None:
        return None, note, None
    compiler = _compiler()
    if compiler is None:
        return None, "not used: no C++ compiler found (set CXX)", None
    path = _library_path(compiler, isa)
    try:
        if not path.exists():
            problem = _build(compiler, isa, path)
            if problem is not None and isa == "avx512" and not note:
                # An older compiler may lack AVX-512: the AVX2 build still runs on this CPU.
                isa, note = "avx2", f" (the AVX-512 build failed: {problem})"
                path = _library_path(compiler, isa)
                problem = None if path.exists() else _build(compiler, isa, path)
            if problem is not None:
                return None, f"not used: the kernels did not build ({problem})", None
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        return None, f"not used: {error}", None
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    return lib, f"{_ISA_NAMES[isa]} build{note} in {path.parent}", isa


def library() -> ctypes.CDLL | None:
    """The loaded kernels (built on first use), or None where they cannot be used."""
    return _load()[0]


def status() -> str:
    """A line on whether memnet's own kernels are used here (which build), and why not."""
    return _load()[1]


def isa() -> str | None:
    """The instruction set of the loaded kernels ("avx2" or "avx512"), None where not loaded."""
    return _load()[2]


def vector_lanes() -> int:
    """Floats per vector of the loaded kernels (8 or 16): channel counts must be multiples.
    8 where they are not loaded (nothing then runs them)."""
    lib = library()
    return 8 if lib is None else int(lib.memnet_vector_lanes())
