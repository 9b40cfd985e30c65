"""Probe: N models vmapped against N sequential calls, one recurrent layer alone.

The layer of the adding model (B, T, I, H) = (64, 100, 2, 64); its gradient (of
mean(ys[:, -1]**2), as the task reads the last step) and its forward pass, for
lj.rnn(lj.lstm) and lj.rnn(lj.gru) (the fused backward pass), the same with
fused_backward=False, a plain lax.scan LSTM and flax's OptimizedLSTMCell/GRUCell under
nn.RNN. Each contender: N calls on N models' params and inputs, against one call of its
jax.vmap on them stacked; interleaved, median of the repetitions, in one process.
Run: python benchmarks/probes/vmap_models.py [N] [reps]
"""

import sys

import jax
import jax.numpy as jnp

import lstm_jax as lj
from lstm_jax.bench import interleaved_ms

B, T, I, H = 64, 100, 2, 64


def plain_lstm(params, xs):
    """An LSTM as a bare lax.scan: (B, T, I) -> (B, T, H); params (w_ih, w_hh, b)."""
    w_ih, w_hh, b = params

    def step(carry, x_t):
        h, c = carry
        z = x_t @ w_ih + h @ w_hh + b
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((xs.shape[0], H))
    return jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(xs, 0, 1))[1].swapaxes(0, 1)


def contenders(kind):
    """{name: (init(key) -> params, apply(params, xs) -> ys)}."""
    import flax.linen as nn

    factory = {"lstm": lj.lstm, "gru": lj.gru}[kind]
    out = {}
    for name, fused in (("lj", None), ("lj autodiff", False)):
        layer = lj.rnn(factory(H), fused_backward=fused)
        out[name] = (lambda key, layer=layer: layer.init(key, I),
                     lambda p, x, layer=layer: layer.apply(p, x)[1])
    module = nn.RNN({"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}[kind](H))
    out["flax"] = (lambda key: module.init(key, jnp.zeros((B, T, I))), module.apply)
    if kind == "lstm":
        def init(key):
            k1, k2 = jax.random.split(key)
            return (jax.random.normal(k1, (I, 4 * H)) / I**0.5,
                    jax.random.normal(k2, (H, 4 * H)) / H**0.5, jnp.zeros(4 * H))
        out["lax.scan"] = (init, plain_lstm)
    return out


def main():
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    xs = [jax.random.uniform(jax.random.key(100 + k), (B, T, I)) for k in range(N)]
    stack = lambda trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)
    for kind in ("lstm", "gru"):
        for name, (init, apply) in contenders(kind).items():
            params = [init(jax.random.key(k)) for k in range(N)]
            loss = lambda p, x, apply=apply: jnp.mean(apply(p, x)[:, -1] ** 2)
            modes = {"forward": jax.jit(apply), "train": jax.jit(jax.grad(loss))}
            for mode, f in modes.items():
                vf = jax.jit(jax.vmap(f))
                P, X = stack(params), stack(xs)
                runs = {"sequential": lambda f=f: jax.block_until_ready(
                            [f(p, x) for p, x in zip(params, xs)]),
                        "vmapped": lambda vf=vf, P=P, X=X: jax.block_until_ready(vf(P, X))}
                ms = interleaved_ms(runs, reps)
                print(f"{kind} {name:12s} N={N} {mode:7s}: sequential {ms['sequential']:6.2f} ms, "
                      f"vmapped {ms['vmapped']:6.2f} ms, x{ms['vmapped'] / ms['sequential']:.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
