"""Moving digits: scikit-learn's 8×8 digits bouncing on a small canvas, next frames.

A small Moving MNIST (Srivastava et al., 2015; Shi et al., 2015): one 8×8 digit of
``sklearn.datasets.load_digits`` (ink scaled to [0, 1]) moves across a ``canvas`` ×
``canvas`` frame with a velocity of -``speed``..``speed`` pixels per frame on each axis
(not 0), bouncing off the edges. The model reads ``frames_in`` frames, then
``frames_out`` blank ones, and must output the ``frames_out`` frames that follow at those
steps (one pass, no ground truth fed back). The training digits are the first 80% of the
1,797 images, the evaluation digits the other 20%, so a test digit was never seen.

``flat``: frames as vectors of canvas² pixels (an LSTM over flattened frames, Shi et
al.'s FC-LSTM), else as (canvas, canvas, 1) images (a ConvLSTM). The loss and the
metric ``mse`` are the mean squared error per pixel over the predicted frames; the
baseline repeats the last frame read.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstm_jax import _checks
from lstm_jax.tasks.base import Batch, Task
from lstm_jax.tasks.digits import load_images

DIGIT = 8  # the side of a scikit-learn digit
TRAIN_FRACTION = 0.8


def _positions(start, velocity, frames: int, room: int):
    """(B, frames, 2) top-left corners bouncing within [0, room]: a triangle wave."""
    travelled = start[:, None, :] + velocity[:, None, :] * jnp.arange(frames)[None, :, None]
    phase = jnp.mod(travelled, 2 * room)
    return room - jnp.abs(phase - room)


def moving_digits_batch(key: jax.Array, images: jax.Array, batch_size: int, canvas: int,
                        frames: int, speed: int = 1) -> jax.Array:
    """(B, frames, canvas, canvas) float32 frames of digits drawn from ``images`` (N, 8, 8).

    >>> images = jnp.ones((3, 8, 8))
    >>> frames = moving_digits_batch(jax.random.key(0), images, 2, 12, 5)
    >>> frames.shape, frames.sum(axis=(2, 3)).tolist()[0]
    ((2, 5, 12, 12), [64.0, 64.0, 64.0, 64.0, 64.0])
    """
    room = canvas - DIGIT
    k_digit, k_start, k_speed, k_sign = jax.random.split(key, 4)
    digits = images[jax.random.randint(k_digit, (batch_size,), 0, images.shape[0])]
    start = jax.random.randint(k_start, (batch_size, 2), 0, room + 1)
    velocity = (jax.random.randint(k_speed, (batch_size, 2), 1, speed + 1)
                * jnp.where(jax.random.bernoulli(k_sign, 0.5, (batch_size, 2)), 1, -1))
    corners = _positions(start, velocity, frames, room)  # (B, frames, 2)

    def draw(digit, corner):
        return jax.lax.dynamic_update_slice(jnp.zeros((canvas, canvas)), digit, tuple(corner))

    return jax.vmap(lambda d, cs: jax.vmap(lambda c: draw(d, c))(cs))(digits, corners)


def moving_digits_task(canvas: int = 16, frames_in: int = 10, frames_out: int = 10,
                       speed: int = 1, flat: bool = True) -> Task:
    """Moving digits as a ``Task``: xs (B, T, canvas²) when ``flat``, else (B, T, canvas,
    canvas, 1), T = frames_in + frames_out, the last frames_out of them blank; targets
    the true frames in the same layout, predicted at every step, scored on the last
    frames_out.

    >>> task = moving_digits_task(canvas=12, frames_in=3, frames_out=2, flat=False)
    >>> batch = task.train_batch(jax.random.key(0), 0, 4)
    >>> batch.xs.shape, float(abs(batch.xs[:, 3:]).sum()), task.output_size
    ((4, 5, 12, 12, 1), 0.0, 1)
    """
    canvas, frames_in, frames_out, speed = (
        _checks.positive_int(n, v) for n, v in (("canvas", canvas), ("frames_in", frames_in),
                                                ("frames_out", frames_out), ("speed", speed)))
    if canvas <= DIGIT:
        raise ValueError(f"`canvas` must be larger than the digits' {DIGIT} pixels, got {canvas}")
    if not isinstance(flat, bool):
        raise TypeError(f"`flat` must be True or False, got {flat!r}")
    images = load_images("moving_digits")[0].reshape(-1, DIGIT, DIGIT)
    split = int(round(TRAIN_FRACTION * len(images)))
    train_images, eval_images = jnp.asarray(images[:split]), jnp.asarray(images[split:])
    steps = frames_in + frames_out
    shape = (canvas * canvas,) if flat else (canvas, canvas, 1)

    @jax.jit
    def make(key, images, like):
        frames = moving_digits_batch(key, images, like.shape[0], canvas, steps, speed)
        frames = frames.reshape(frames.shape[:2] + shape)
        seen = frames.at[:, frames_in:].set(0.0)  # blanks where the model must predict
        return Batch(seen, frames)

    def train_batch(key, step, batch_size):
        return make(jax.random.fold_in(key, step), train_images, jnp.zeros(batch_size))

    def eval_batches(key, batch_size, count):
        return [make(jax.random.fold_in(key, i), eval_images, jnp.zeros(batch_size))
                for i in range(count)]

    def mse(predictions, batch):
        errors = predictions[:, frames_in:].astype(jnp.float32) - batch.targets[:, frames_in:]
        return jnp.mean(jnp.square(errors))

    # the copy-the-last-frame baseline on 512 sequences of the evaluation digits
    sample = make(jax.random.key(0), eval_images, jnp.zeros(512)).targets
    last = jnp.repeat(sample[:, frames_in - 1:frames_in], frames_out, axis=1)
    baseline = float(jnp.mean(jnp.square(last - sample[:, frames_in:])))
    return Task(name="moving_digits", input_size=canvas * canvas if flat else 1,
                output_size=canvas * canvas if flat else 1, readout="every",
                train_batch=train_batch, eval_batches=eval_batches, loss=mse,
                metrics=lambda predictions, batch: {"mse": mse(predictions, batch)},
                baselines={"mse": baseline},
                baseline_note=f"repeating the last of the {frames_in} frames read "
                              f"(512 sequences of the evaluation digits)")
