"""The m6r6 network gives the stored output for a fixed seed and input."""

from __future__ import annotations

import torch

from snapshots import snapshot_input, snapshot_model, stored


def test_m6r6_matches_stored_snapshot() -> None:
    reference = stored()
    x = snapshot_input()
    torch.testing.assert_close(x, reference["input"], rtol=0, atol=0)
    with torch.no_grad():
        output = snapshot_model()(x)
    torch.testing.assert_close(output, reference["output"], rtol=1e-5, atol=1e-5)
