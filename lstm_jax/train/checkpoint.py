"""Checkpoints on local disk with orbax: every N steps and at the end, the last K kept.

orbax writes each checkpoint to a temporary folder and renames it when complete, so a
run killed mid-save leaves the previous checkpoint intact. Nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, truncated or from another model."""


class Checkpoints:
    """The checkpoints of one run, in ``directory`` (``<run>/checkpoints``)."""

    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any) -> None:
        self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._manager.wait_until_finished()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at ``step`` (default: the latest), shaped like ``like``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        path = self.directory / str(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as error:  # orbax/tensorstore raise many types; name the path
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"cannot restore checkpoint {path}: {reason}") from error
        _check_matches(restored, like, path)
        return restored

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _check_matches(restored: Any, like: Any, path: Path) -> None:
    """Refuse a checkpoint whose structure, shapes or dtypes differ from the model's."""
    if jax.tree.structure(restored) != jax.tree.structure(like):
        raise CheckpointError(f"checkpoint {path} holds another structure than this model's")
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(like)):
        if np.shape(got) != np.shape(want) or got.dtype != want.dtype:
            raise CheckpointError(
                f"checkpoint {path} does not fit this model: an array of "
                f"{np.shape(got)} {got.dtype} where {np.shape(want)} {want.dtype} is expected"
            )
