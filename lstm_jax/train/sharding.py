"""Data parallelism: the batch split over devices, parameters replicated.

On one device nothing is placed explicitly: the plain path. On several, a 1-d
``Mesh`` over ``jax.devices()`` named ``"data"`` shards the batch axis of every input
and replicates the train state; ``jit`` propagates the shardings and inserts the
gradient all-reduce. For several hosts, call ``jax.distributed.initialize()`` before
training: ``jax.devices()`` then spans all hosts, every process builds the same global
batch (a pure function of seed and step) and places only its own shards.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstm_jax.train.config import ConfigError


class DataParallel:
    """Places train states and batches on ``devices`` (default: all of them)."""

    def __init__(self, devices=None):
        self.devices = list(jax.devices() if devices is None else devices)
        self.mesh = Mesh(np.array(self.devices), ("data",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_split = NamedSharding(self.mesh, PartitionSpec("data"))

    @property
    def size(self) -> int:
        return len(self.devices)

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise ConfigError(
                f"`batch_size` {batch_size} is not divisible by the {self.size} devices; "
                f"use a multiple of {self.size}"
            )

    def replicate(self, tree: Any) -> Any:
        if self.size == 1:
            return tree
        return jax.device_put(tree, self.replicated)

    def shard_batch(self, batch: Any) -> Any:
        """Split every array's leading (batch) axis over the devices."""
        if self.size == 1:
            return batch

        def place(x):
            host = np.asarray(x)
            return jax.make_array_from_callback(host.shape, self.batch_split, lambda i: host[i])

        return jax.tree.map(place, batch)
