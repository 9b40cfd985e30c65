"""Dtype-safe parameter initializers.

Every initializer has the signature of ``jax.nn.initializers``:
``init(key, shape, dtype) -> array``. All of them draw their numbers in float32 and
cast at the end, so they work for float32, float16 and bfloat16 parameters alike
(``jax.nn.initializers.orthogonal`` cannot run its QR decomposition in bfloat16).

>>> import jax, jax.numpy as jnp
>>> w = orthogonal()(jax.random.key(0), (6, 6), jnp.bfloat16)
>>> w.dtype, w.shape
(dtype(bfloat16), (6, 6))
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[[jax.Array, tuple, jnp.dtype], jax.Array]

__all__ = [
    "Initializer",
    "constant",
    "identity",
    "lecun_normal",
    "orthogonal",
    "per_gate",
    "uniform",
    "zeros",
]


def _in_float32(init: Initializer) -> Initializer:
    """Run ``init`` in float32 and cast the result to the requested dtype."""

    def cast_init(key, shape, dtype=jnp.float32):
        return init(key, tuple(shape), jnp.float32).astype(dtype)

    return cast_init


def uniform(scale: float) -> Initializer:
    """Uniform on [-scale, scale): PyTorch's RNN init uses ``scale = 1/sqrt(H)``."""

    def init(key, shape, dtype):
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)

    return _in_float32(init)


def lecun_normal() -> Initializer:
    """Truncated normal with variance 1/fan_in (flax's default kernel init)."""
    return _in_float32(jax.nn.initializers.lecun_normal())


def orthogonal(scale: float = 1.0) -> Initializer:
    """A random (semi-)orthogonal matrix times ``scale``, computed in float32."""
    return _in_float32(jax.nn.initializers.orthogonal(scale))


def identity(scale: float = 1.0) -> Initializer:
    """``scale`` times the identity matrix: the recurrent init of IRNN (Le et al., 2015).

    >>> identity(0.5)(None, (2, 2), jnp.float32)
    Array([[0.5, 0. ],
           [0. , 0.5]], dtype=float32)
    """

    def init(key, shape, dtype):
        del key
        if len(shape) != 2:
            raise ValueError(f"identity init needs a 2-d shape, got {tuple(shape)}")
        return (scale * jnp.eye(*shape, dtype=jnp.float32)).astype(dtype)

    return init


def constant(value: float) -> Initializer:
    """Every entry equal to ``value``."""

    def init(key, shape, dtype):
        del key
        return jnp.full(shape, value, dtype)

    return init


def zeros() -> Initializer:
    """All zeros."""
    return constant(0.0)


def per_gate(init: Initializer, num_gates: int) -> Initializer:
    """Apply ``init`` separately to each of ``num_gates`` column blocks.

    A recurrent matrix of shape (H, 4H) initialized with ``per_gate(orthogonal(), 4)``
    is four independent orthogonal (H, H) blocks, as flax's ``LSTMCell`` and Keras build
    it, rather than one semi-orthogonal (H, 4H) matrix.

    >>> w = per_gate(orthogonal(), 4)(jax.random.key(0), (3, 12), jnp.float32)
    >>> bool(jnp.allclose(w[:, 3:6] @ w[:, 3:6].T, jnp.eye(3), atol=1e-5))
    True
    """

    def init_blocks(key, shape, dtype=jnp.float32):
        *rows, cols = shape
        if cols % num_gates:
            raise ValueError(
                f"per_gate: last dimension {cols} is not divisible by {num_gates} gates"
            )
        keys = jax.random.split(key, num_gates)
        block = (*rows, cols // num_gates)
        return jnp.concatenate([init(k, block, dtype) for k in keys], axis=-1)

    return init_blocks
