"""memnet's own CPU kernels (kernels/*.cpp): built on first use, loaded next to PyTorch.

The kernels are plain C++ with AVX2 + FMA intrinsics and OpenMP, no PyTorch headers, so this
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
from functools import cache
from pathlib import Path

import torch

__all__ = ["SOURCES", "cache_folder", "library", "status"]

SOURCES = tuple(sorted((Path(__file__).parent / "kernels").glob("*.cpp")))
_COMPILER_FLAGS = ["-O3", "-mavx2", "-mfma", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]
_I64, _PTR, _INT = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
# Every exported function: its argument types (all return an int64 or an int status).
_SIGNATURES = {
    "memnet_winograd_conv": (
        _INT,
        # x, n, height, width, C, pad_top, pad_bottom, scale, shift, U, K, bias, add, y, ...
        [
            _PTR,
            _I64,
            _I64,
            _I64,
            _I64,
            _I64,
            _I64,
            _PTR,
            _PTR,
            _PTR,
            _I64,
            _PTR,
            _PTR,
            _PTR,
            _INT,
            _INT,
            _I64,
        ],
    ),
    "memnet_winograd_block": (_I64, [_I64, _I64, _I64]),
    "memnet_gate_share": (_INT, [_PTR, _I64, _I64, _PTR, _PTR, _PTR, _I64, _PTR, _PTR, _INT, _INT]),
}


def cache_folder() -> Path:
    """Where memnet keeps what it builds and measures on this machine."""
    explicit = os.environ.get("MEMNET_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "memnet"


def _cpu_has_avx2_fma() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return "avx2" in flags and "fma" in flags


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")


def _library_path(compiler: str) -> Path:
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.read_bytes())
    for part in (*_COMPILER_FLAGS, compiler, torch.__version__, sys.platform):
        digest.update(part.encode())
    return cache_folder() / "kernels" / digest.hexdigest()[:16] / "libmemnet_kernels.so"


def _build(compiler: str, target: Path) -> str | None:
    """Compile the kernels to `target` (atomically); the compiler's complaint if it fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        command = [compiler, *_COMPILER_FLAGS, "-o", str(built), *map(str, SOURCES)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as error:
            return str(error)
        if result.returncode != 0:
            return (result.stderr.strip().splitlines() or ["failed"])[-1]
        os.replace(built, target)
    return None


@cache
def _load() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get("MEMNET_NATIVE", "1") == "0":
        return None, "off (MEMNET_NATIVE=0)"
    if not sys.platform.startswith("linux") or not _cpu_has_avx2_fma():
        return None, "not used: needs Linux on a CPU with AVX2 and FMA"
    compiler = _compiler()
    if compiler is None:
        return None, "not used: no C++ compiler found (set CXX)"
    path = _library_path(compiler)
    try:
        if not path.exists():
            problem = _build(compiler, path)
            if problem is not None:
                return None, f"not used: the kernels did not build ({problem})"
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        return None, f"not used: {error}"
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    return lib, f"built in {path.parent}"


def library() -> ctypes.CDLL | None:
    """The loaded kernels (built on first use), or None where they cannot be used."""
    return _load()[0]


def status() -> str:
    """A line on whether memnet's own kernels are used here, and why not."""
    return _load()[1]
