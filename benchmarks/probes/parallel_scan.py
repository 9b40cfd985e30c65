"""Probe: why minGRU's associative scan over time loses to stepping on CPU.

The recurrence h_t = a_t ⊙ h_{t-1} + b_t alone, forward only, at (T, B, H), four ways:
a sequential ``lax.scan``; ``lax.associative_scan`` on (a, b) directly; the same in log
space as lstm_jax runs it (logaddexp in every combine); and the cost of one elementwise
pass of each combine over all T steps. It also counts how many elements jax's
associative_scan combines, to compare its work with the T steps of the loop.

Run: python benchmarks/probes/parallel_scan.py
"""

import jax
import jax.numpy as jnp

from lstm_jax.bench import median_ms

SHAPES = [(256, 8, 64), (1024, 8, 64), (4096, 8, 64)]  # (T, B, H), as the bench rows


def linear(first, then):
    (a1, b1), (a2, b2) = first, then
    return a1 * a2, a2 * b1 + b2


def log_space(first, then):
    (a1, b1), (a2, b2) = first, then
    return a1 + a2, jnp.logaddexp(b1 + a2, b2)


def combined_elements(T: int) -> int:
    """Time steps jax's associative_scan feeds to its combine, over all levels."""
    seen = []

    def counting(first, then):
        seen.append(first[0].shape[0])
        return linear(first, then)

    jax.eval_shape(lambda a: jax.lax.associative_scan(counting, (a, a)),
                   jax.ShapeDtypeStruct((T, 1), jnp.float32))
    return sum(seen), len(seen)


def main():
    for T, B, H in SHAPES:
        key_a, key_b = jax.random.split(jax.random.key(0))
        log_a = -jax.nn.softplus(jax.random.normal(key_a, (T, B, H)))
        log_b = -jax.nn.softplus(jax.random.normal(key_b, (T, B, H)))
        a, b = jnp.exp(log_a), jnp.exp(log_b)
        runs = {
            "sequential scan": (jax.jit(lambda a, b: jax.lax.scan(
                lambda h, ab: ((ab[0] * h + ab[1]),) * 2, jnp.zeros((B, H)), (a, b))[1]), (a, b)),
            "associative, linear": (jax.jit(lambda a, b: jax.lax.associative_scan(
                linear, (a, b))[1]), (a, b)),
            "associative, log space": (jax.jit(lambda a, b: jnp.exp(jax.lax.associative_scan(
                log_space, (a, b))[1])), (log_a, log_b)),
            "one pass of a*h + b": (jax.jit(lambda a, b: linear((a, b), (a, b))), (a, b)),
            "one pass of logaddexp": (jax.jit(lambda a, b: log_space((a, b), (a, b))), (log_a, log_b)),
        }
        times = {}
        for name, (fn, args) in runs.items():
            jax.block_until_ready(fn(*args))
            times[name] = median_ms(lambda fn=fn, args=args: jax.block_until_ready(fn(*args)))
        elements, calls = combined_elements(T)
        print(f"T={T} (B, H)=({B}, {H}): associative_scan combines {elements} steps "
              f"({elements / T:.2f} T) in {calls} calls")
        for name, ms in times.items():
            print(f"  {name:24} {ms:8.2f} ms")


if __name__ == "__main__":
    main()
