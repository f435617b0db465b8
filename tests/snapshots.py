"""A fixed-seed m6r6 on a fixed input: the stored output guards against silent model changes.

Regenerate (only after an intended change of the network) with
    python tests/snapshots.py
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from memnet.model import MemNet, create_model

SNAPSHOT = Path(__file__).with_name("data") / "m6r6_snapshot.safetensors"


def snapshot_model() -> MemNet:
    torch.manual_seed(2017)
    model = create_model("m6r6")
    # BatchNorm statistics measured on a fixed calibration image (one pass in training mode,
    # cumulative average), so that every layer is normalised and no part of the network (the
    # global residual, B0 in the gates, one branch) is drowned by activations that grow over 36
    # recursions; then non-trivial affines so that every layer's role shows in the output.
    calibration = torch.rand(2, 1, 24, 20, generator=torch.Generator().manual_seed(13))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.momentum = None
    with torch.no_grad():
        model.train()(calibration)
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
    generator = torch.Generator().manual_seed(7)
    for bn in norms:
        n = bn.num_features
        bn.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=generator))
        bn.bias.data.copy_(0.1 * torch.randn(n, generator=generator))
    return model.eval()


def snapshot_input() -> torch.Tensor:
    generator = torch.Generator().manual_seed(11)
    return torch.rand(1, 1, 24, 20, generator=generator)


def stored() -> dict[str, torch.Tensor]:
    return load_file(str(SNAPSHOT))


if __name__ == "__main__":
    with torch.no_grad():
        x = snapshot_input()
        y = snapshot_model()(x)
    SNAPSHOT.parent.mkdir(exist_ok=True)
    save_file({"input": x, "output": y}, str(SNAPSHOT))
    print(f"wrote {SNAPSHOT}")
