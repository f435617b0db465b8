"""BatchNorm statistics over the whole batch of all DDP processes, on CUDA and on the CPU.

Under DistributedDataParallel every process normalises with the mean and variance of its own
share of the batch; the authors' batch of 32 was one batch with one set of statistics. On CUDA
PyTorch's `torch.nn.SyncBatchNorm` synchronises them, but it refuses CPU modules ("SyncBatchNorm
layers only work with GPU modules"), so CPU (gloo) runs use `SyncedBatchNorm2d` here: every
process gathers each channel's (count, mean, sum of squared deviations) from all processes and
combines them exactly as one process would over the concatenated batch (Chan et al.'s pairwise
update, stable where E[x²] − E[x]² is not). The gather is differentiable: its backward sums the
gradients of every process's statistics, so the weight gradients, averaged by DDP, are those of
one process on the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["SyncedBatchNorm2d", "synchronize_batchnorm"]


class _GatherStatistics(torch.autograd.Function):
    """all_gather of a (3, C) tensor into (world, 3, C); backward sums over processes."""

    @staticmethod
    def forward(ctx: Any, local: Tensor) -> Tensor:
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, local.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        # process r's statistics enter every process's output: its gradient is the sum of all
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


class SyncedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batches of all processes (any backend).

    Outside training, or without an initialised process group of more than one process, it is
    a plain BatchNorm2d. Its parameters and buffers are BatchNorm2d's (same state-dict keys).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        if dist.get_world_size() == 1:
            return super().forward(x)
        self._check_input_dim(x)
        dims = (0, 2, 3)
        count = x.numel() // x.shape[1]
        local_mean = x.mean(dims)
        centred = x - local_mean[None, :, None, None]
        local_m2 = (centred * centred).sum(dims)
        local = torch.stack([torch.full_like(local_mean, float(count)), local_mean, local_m2])
        gathered = _GatherStatistics.apply(local)
        counts, means, m2s = gathered[:, 0], gathered[:, 1], gathered[:, 2]
        total = counts.sum(0)
        mean = (counts * means).sum(0) / total
        deviation = means - mean
        m2 = (m2s + counts * deviation * deviation).sum(0)
        var = m2 / total  # biased: what normalises the batch
        if self.track_running_stats:
            self._update_running_statistics(mean.detach(), m2.detach(), total.detach())
        scale = torch.rsqrt(var + self.eps)
        shape = (1, -1, 1, 1)
        out = (x - mean.view(shape)) * scale.view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out

    @torch.no_grad()
    def _update_running_statistics(self, mean: Tensor, m2: Tensor, total: Tensor) -> None:
        assert self.running_mean is not None
        assert self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as BatchNorm2d
            factor = 1.0 / float(self.num_batches_tracked.item())
        else:
            factor = self.momentum
        unbiased = m2 / (total - 1).clamp(min=1)  # the running variance is unbiased, as torch's
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


def _convert_to_synced(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, SyncedBatchNorm2d):
        like = next(t for t in module.state_dict().values() if t.is_floating_point())
        synced = SyncedBatchNorm2d(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
            device=like.device,
            dtype=like.dtype,
        )
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, _convert_to_synced(child))
    return module


def synchronize_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of `model` with statistics over all processes; returns the model.

    CUDA: PyTorch's SyncBatchNorm (its fused kernels); other devices: `SyncedBatchNorm2d`.
    The state-dict keys stay those of BatchNorm2d, so checkpoints are interchangeable.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_to_synced(model)
