"""Data parallelism (one run's batch split over devices) and model parallelism (runs
trained at once, split over devices).

On one device nothing is placed explicitly: the plain path. On several, a 1-d
``Mesh`` over ``jax.devices()`` named ``"data"`` shards the batch axis of every input
and replicates the train state; ``jit`` propagates the shardings and inserts the
gradient all-reduce. For several hosts, call ``jax.distributed.initialize()`` before
training: ``jax.devices()`` then spans all hosts, every process builds the same global
batch (a pure function of seed and step) and places only its own shards.

Several runs trained at once (``lstm-jax train --seeds``) stack their states and
batches on a leading model axis; ``ModelParallel`` splits that axis over the devices,
so each device trains its own models and no gradient crosses devices.
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
        return _split_leading(batch, self.batch_split) if self.size > 1 else batch

    place_state = replicate
    place_batch = shard_batch


class ModelParallel:
    """Places the states and batches of ``models`` runs stacked on a leading model axis:
    that axis split over as many of ``devices`` (default: all) as divide ``models``.

    >>> ModelParallel(3, devices=jax.devices()[:1]).size
    1
    """

    def __init__(self, models: int, devices=None):
        available = list(jax.devices() if devices is None else devices)
        count = max(d for d in range(1, len(available) + 1) if models % d == 0)
        self.devices = available[:count]
        self.mesh = Mesh(np.array(self.devices), ("models",))
        self.model_split = NamedSharding(self.mesh, PartitionSpec("models"))

    @property
    def size(self) -> int:
        return len(self.devices)

    def check_batch_size(self, batch_size: int) -> None:
        """Any batch size: each model's batch stays whole, on its model's device."""

    def place_state(self, tree: Any) -> Any:
        return _split_leading(tree, self.model_split) if self.size > 1 else tree

    place_batch = place_state


def _split_leading(tree: Any, sharding: NamedSharding) -> Any:
    """Every array of ``tree`` placed with its leading axis split as ``sharding`` says;
    a typed PRNG key array (``jax.random.split(key, n)``) as its key data, rewrapped."""

    def place(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(place(jax.random.key_data(x)),
                                            impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda i: host[i])

    return jax.tree.map(place, tree)
