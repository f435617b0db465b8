"""Batches for the training step: drawn from (seed, rank, index), prepared ahead by threads.

Batch `i` of process `rank` depends only on (seed, rank, i), so a run resumes exactly from a
batch counter, and background threads can prepare batches ahead of the step.
"""

from __future__ import annotations

import math
import queue
import threading
import time

import numpy as np
import torch

from memnet.training.patches import PatchSource

__all__ = ["BatchStream", "batch_generator"]


def batch_generator(seed: int, rank: int, index: int) -> np.random.Generator:
    """The random stream of batch `index` of process `rank`: independent of every other batch."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, rank, index])))


_STOP_POLL_S = 0.1


class BatchStream:
    """Batches start, start+1, ... prepared by background threads, handed out in order.

    Each thread makes every `workers`-th batch; the work is patch copies out of in-memory
    images, so one thread keeps up with the step and leaves the cores to the network.
    """

    def __init__(
        self,
        source: PatchSource,
        *,
        batch_size: int,
        augment: bool,
        seed: int,
        rank: int,
        start: int,
        workers: int = 1,
        prefetch: int = 4,
        pin_memory: bool = False,
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.rank = rank
        self.position = start  # index of the next batch handed out
        self.pin_memory = pin_memory
        self._made = 0
        self._making_seconds = 0.0
        self._start = start
        self._stop = threading.Event()
        per_worker = max(1, math.ceil(prefetch / workers))
        self._queues: list[queue.Queue[object]] = [
            queue.Queue(maxsize=per_worker) for _ in range(workers)
        ]
        self._threads = [
            threading.Thread(
                target=self._work, args=(k, workers), name=f"memnet-batches-{k}", daemon=True
            )
            for k in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def make(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` as (inputs, targets) tensors of shape (B, 1, P, P)."""
        started = time.perf_counter()
        rng = batch_generator(self.seed, self.rank, index)
        x, y = self.source.sample(rng, self.batch_size, self.augment)
        inputs, targets = torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None]
        if self.pin_memory:
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        self._making_seconds += time.perf_counter() - started  # (a statistic: races are harmless)
        self._made += 1
        return inputs, targets

    @property
    def batch_ms(self) -> float:
        """Average time a background thread spends making one batch, in milliseconds."""
        return 1000 * self._making_seconds / max(1, self._made)

    def _work(self, k: int, workers: int) -> None:
        index = self._start + k
        out = self._queues[k]
        while not self._stop.is_set():
            try:
                item: object = self.make(index)
            except BaseException as error:  # handed to the consumer, which re-raises it
                item = error
            while not self._stop.is_set():
                try:
                    out.put(item, timeout=_STOP_POLL_S)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            index += workers

    def next(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The next batch and the seconds spent waiting for it."""
        started = time.perf_counter()
        source = self._queues[(self.position - self._start) % len(self._queues)]
        item = source.get()
        waited = time.perf_counter() - started
        if isinstance(item, BaseException):
            self.close()
            raise item
        self.position += 1
        assert isinstance(item, tuple)
        return item[0], item[1], waited

    def close(self) -> None:
        """Stop the threads (they exit within a poll interval)."""
        self._stop.set()
        for q in self._queues:
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
