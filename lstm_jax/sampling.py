"""Sampling from an autoregressive model one token at a time, with ``lax.scan``."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from lstm_jax import _checks


def sample(
    step: Callable[[Any, jax.Array], tuple[Any, jax.Array]],
    carry: Any,
    token: jax.Array,
    key: jax.Array,
    *,
    length: int,
    temperature: float = 1.0,
    start: int | jax.Array = 0,
) -> tuple[jax.Array, Any]:
    """Draw ``length`` tokens, each fed back as the next step's input.

    The Python loop it replaces::

        for t in range(length):
            carry, logits = step(carry, token)
            token = categorical(key_t, logits / temperature)   # argmax when temperature is 0
            tokens.append(token)

    Args:
      step: ``(carry, token (B,) int) -> (carry, logits (B, V))``, e.g. one step of a
        recurrent model with a readout.
      carry: the state before ``token``, e.g. after reading a prompt.
      token: (B,) int, the last token read (the prompt's last).
      key: a PRNG key; step ``t`` draws with ``jax.random.fold_in(key, start + t)``.
      length: tokens to draw (a Python int: it fixes the scan's length).
      temperature: a finite Python float >= 0 dividing the logits; 0 takes the argmax.
      start: the number of the first step, an int or a () int array (traced under
        ``jit``, so one compiled draw serves every piece): a long draw made in pieces,
        each from the carry, last token and ``start + length`` of the one before, is the
        draw made at once (below). ``Trained.sample`` draws so, to stop between pieces.

    Returns:
      ``(tokens, carry)``: (B, length) int32 ids and the carry after the last step (the
      last drawn token not yet read).

    >>> import jax, jax.numpy as jnp
    >>> counter = lambda carry, token: (carry + 1, jax.nn.one_hot(carry % 3, 3) * 9)
    >>> tokens, carry = sample(counter, jnp.zeros(2, jnp.int32), jnp.zeros(2, jnp.int32),
    ...                        jax.random.key(0), length=4, temperature=0.0)
    >>> tokens.tolist(), carry.tolist()
    ([[0, 1, 2, 0], [0, 1, 2, 0]], [4, 4])

    >>> noisy = lambda carry, token: (carry, jnp.zeros((2, 5)))  # every token equally likely
    >>> args = (noisy, 0, jnp.zeros(2, jnp.int32), jax.random.key(1))
    >>> at_once, _ = sample(*args, length=6)
    >>> first, _ = sample(*args, length=4)
    >>> rest, _ = sample(noisy, 0, first[:, -1], args[3], length=2, start=4)
    >>> bool((jnp.concatenate([first, rest], axis=1) == at_once).all())
    True
    """
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise ValueError(f"`length` must be a positive int, got {length!r}")
    temperature = check_temperature(temperature)
    token = jnp.asarray(token)
    if token.ndim != 1 or not jnp.issubdtype(token.dtype, jnp.integer):
        raise ValueError(f"`token` must be (B,) int ids, got {token.dtype} {token.shape}")
    given, start = start, jnp.asarray(start)
    if start.ndim != 0 or not jnp.issubdtype(start.dtype, jnp.integer):
        got = f"{start.dtype} {start.shape}" if hasattr(given, "shape") else repr(given)
        raise ValueError(f"`start` must be an int or a () int array, got {got}")

    def draw(state, t):
        carry, token = state
        carry, logits = step(carry, token)
        if temperature == 0:
            token = jnp.argmax(logits, axis=-1)
        else:
            token = jax.random.categorical(jax.random.fold_in(key, t),
                                           logits.astype(jnp.float32) / temperature, axis=-1)
        token = token.astype(jnp.int32)
        return (carry, token), token

    (carry, _), tokens_LxB = jax.lax.scan(draw, (carry, token.astype(jnp.int32)),
                                          start + jnp.arange(length))
    return tokens_LxB.T, carry


def check_temperature(temperature: Any) -> float:
    """``temperature`` as a float if it is a finite number >= 0, else a ValueError naming it."""
    if not (_checks.is_finite(temperature) and temperature >= 0):
        raise ValueError(f"`temperature` must be a finite float >= 0, got {temperature!r}")
    return float(temperature)
