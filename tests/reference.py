"""An independent NumPy float64 reference, written from the equations in a plain loop.

It shares nothing with lstm_jax but the documented parameter layout (gate order
(i, f, g, o) for LSTM, (r, z, n) for GRU, weights (in, out)).
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def to64(tree):
    """Params NamedTuple (possibly nested, with None) -> same structure of float64 numpy."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        return type(tree)(*(to64(t) for t in tree)) if hasattr(tree, "_fields") else tuple(
            to64(t) for t in tree
        )
    return np.asarray(tree, dtype=np.float64)


def layer_norm(x, scale, bias=None, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * scale
    return y if bias is None else y + bias


def lstm_step(p, h, c, x, *, coupled=False, act=np.tanh, gate=sigmoid):
    """One LSTM step on (B, I) x, (B, P) h, (B, H) c; returns (h, c, gates dict)."""
    H = c.shape[-1]
    zx = x @ p.w_ih
    zh = h @ p.w_hh
    if p.layer_norm is not None:
        zx = layer_norm(zx, p.layer_norm.inputs.scale)
        zh = layer_norm(zh, p.layer_norm.recurrent.scale)
    z = zx + zh + (0.0 if p.b is None else p.b)
    blocks = {}
    names = ("f", "g", "o") if coupled else ("i", "f", "g", "o")
    for n, name in enumerate(names):
        blocks[name] = z[:, n * H : (n + 1) * H]
    peep = p.peephole
    f = gate(blocks["f"] + (peep.f * c if peep is not None else 0.0))
    if coupled:
        i = 1.0 - f
    else:
        i = gate(blocks["i"] + (peep.i * c if peep is not None else 0.0))
    g = act(blocks["g"])
    c_new = f * c + i * g
    o = gate(blocks["o"] + (peep.o * c_new if peep is not None else 0.0))
    c_shown = c_new
    if p.layer_norm is not None:
        c_shown = layer_norm(c_new, p.layer_norm.cell.scale, p.layer_norm.cell.bias)
    h_new = o * act(c_shown)
    if p.w_hr is not None:
        h_new = h_new @ p.w_hr
    return h_new, c_new, dict(f=f, i=i, g=g, o=o, c=c_new, h=h_new)


def gru_step(p, h, x, *, act=np.tanh, gate=sigmoid):
    H = h.shape[-1]
    b = np.zeros(3 * H) if p.b is None else p.b
    b_hn = np.zeros(H) if p.b_hn is None else p.b_hn
    W_ir, W_iz, W_in = (p.w_ih[:, k * H : (k + 1) * H] for k in range(3))
    W_hr, W_hz, W_hn = (p.w_hh[:, k * H : (k + 1) * H] for k in range(3))
    r = gate(x @ W_ir + h @ W_hr + b[:H])
    z = gate(x @ W_iz + h @ W_hz + b[H : 2 * H])
    n = act(x @ W_in + b[2 * H :] + r * (h @ W_hn + b_hn))
    h_new = (1 - z) * n + z * h
    return h_new, dict(r=r, z=z, n=n, h=h_new)


def simple_step(p, h, x, *, act=np.tanh):
    h_new = act(x @ p.w_ih + h @ p.w_hh + (0.0 if p.b is None else p.b))
    return h_new, dict(h=h_new)


def run(kind, p, xs, *, lengths=None, carry=None, reverse=False, **options):
    """Run a cell over batch-major xs (B, T, I), one sequence at a time.

    Each sequence is cut to its length, reversed if asked, stepped through, and its
    outputs written back in original order; padding outputs stay 0.
    Returns (final carry as a tuple of (B, .) arrays, ys (B, T, P), gates dict of
    (B, T, .) arrays).
    """
    p = to64(p)
    xs = np.asarray(xs, np.float64)
    B, T, _ = xs.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    if kind == "lstm":
        P, H = p.w_hh.shape[0], p.w_hh.shape[1] // (3 if options.get("coupled") else 4)
        init = (np.zeros((B, P)), np.zeros((B, H)))
    else:
        H = p.w_hh.shape[0]
        init = (np.zeros((B, H)),)
    carry = init if carry is None else tuple(np.asarray(c, np.float64) for c in carry)
    out_size = carry[0].shape[-1]
    ys = np.zeros((B, T, out_size))
    gates, finals = {}, [np.array(c) for c in carry]
    for b in range(B):
        n = int(lengths[b])
        order = list(range(n))[::-1] if reverse else list(range(n))
        state = tuple(c[b : b + 1] for c in carry)
        for t in order:
            x = xs[b : b + 1, t]
            if kind == "lstm":
                h, c, g = lstm_step(p, *state, x, **options)
                state = (h, c)
            elif kind == "gru":
                h, g = gru_step(p, *state, x, **options)
                state = (h,)
            else:
                h, g = simple_step(p, *state, x, **options)
                state = (h,)
            ys[b, t] = state[0][0]
            for name, value in g.items():
                gates.setdefault(name, np.zeros((B, T, value.shape[-1])))[b, t] = value[0]
        for k, s in enumerate(state):
            finals[k][b] = s[0]
    return tuple(finals), ys, gates
