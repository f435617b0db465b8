"""What memnet offers on this machine, in words: presets measured from the built network, the
compute devices, the released models (what `memnet info` prints)."""

from __future__ import annotations

import platform

from memnet import __version__

__all__ = ["describe", "describe_preset", "device_line", "overview"]


def describe_preset(name: str) -> str:
    """One line on a preset: M, R, C, parameters, MFLOP per output pixel, receptive field."""
    from memnet.model import create_model, summarize

    summary = summarize(create_model(name))
    c = summary.config
    return (
        f"{name}: M={c.blocks} R={c.recursions} C={c.channels}  "
        f"parameters {summary.parameters:,}  conv weights {summary.conv_weights:,}  "
        f"{summary.mflop_per_pixel:.2f} MFLOP/pixel  receptive field {summary.receptive_field} px"
    )


def describe(name: str) -> str:
    """A released model's description, else the preset's line (a clear error for neither)."""
    from memnet.weights import zoo

    if name in zoo.REGISTRY:
        return zoo.describe(name)
    return describe_preset(name)


def device_line() -> str:
    """The devices memnet can run on here: the CPU's threads, each CUDA GPU, MPS."""
    import torch

    from memnet import devices

    parts = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        parts += [
            f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        ]
    if devices.mps_available():
        parts.append("mps")
    return ", ".join(parts)


def overview() -> list[str]:
    """Versions, devices, every preset and every released model, as printed lines."""
    import torch

    from memnet.network_config import PRESETS
    from memnet.weights import zoo

    lines = [
        f"memnet {__version__}  torch {torch.__version__}  python {platform.python_version()}",
        f"device: {device_line()}",
        "\npresets:",
    ]
    lines += ["  " + describe_preset(name) for name in PRESETS]
    lines.append("\nreleased models:")
    lines += [f"  {line}" for line in zoo.describe_all()]
    return lines
