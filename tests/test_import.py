"""`import memnet` stays light: PyTorch and the image stack load only when a name needs them."""

from __future__ import annotations

import subprocess
import sys


def modules_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter holds after running `code`."""
    script = (
        f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_importing_the_package_loads_no_heavy_library() -> None:
    loaded = modules_after("import memnet")
    assert not loaded & {"torch", "numpy", "PIL", "scipy"}


def test_the_lazy_names_still_resolve() -> None:
    loaded = modules_after(
        "import memnet\nassert memnet.create_model('tiny').config == memnet.PRESETS['tiny']"
    )
    assert "torch" in loaded


# What `memnet --help` and the argument parsing of every command may not load: PyTorch (seconds),
# Pillow, SciPy, and the libraries of the commands' work. numpy is allowed: the task registry
# holds numpy functions.
HEAVY_FOR_THE_PARSER = {"torch", "PIL", "scipy", "safetensors", "pydantic", "av", "ray", "fastapi"}


def test_building_the_command_line_parser_loads_no_heavy_library() -> None:
    loaded = modules_after("import memnet.cli\nmemnet.cli.build_parser()")
    assert not loaded & HEAVY_FOR_THE_PARSER


def test_every_command_help_loads_no_heavy_library() -> None:
    from memnet.cli import COMMANDS

    for command in COMMANDS:
        loaded = modules_after(
            "import contextlib, io, memnet.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            f"    memnet.cli.main([{command!r}, '--help'])"
        )
        assert not loaded & HEAVY_FOR_THE_PARSER, command


def test_a_command_that_needs_no_network_loads_no_pytorch() -> None:
    # `memnet data list` runs cli.main's process-wide settings too: they must not pull PyTorch in.
    loaded = modules_after(
        "import contextlib, io, memnet.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert memnet.cli.main(['data', 'list']) == 0"
    )
    assert "torch" not in loaded
