"""Data for experiments: synthetic generators, pure functions of a PRNG key."""

from lstm_jax.tasks.adding import adding_batch

__all__ = ["adding_batch"]
