"""The LSTM cell and its well-known variants, with the gate math in one function."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lstm_jax import _checks
from lstm_jax.cells import base

Array = jax.Array


class LSTMState(NamedTuple):
    """The LSTM carry."""

    h: Array  # (*batch, P) hidden state: short-term memory, also the output
    c: Array  # (*batch, H) cell state: long-term memory


class LSTMGateState(NamedTuple):
    """The carry of an LSTM with ``gate_recurrence``: ``LSTMState`` plus the gates."""

    h: Array  # (*batch, P) as LSTMState.h
    c: Array  # (*batch, H) as LSTMState.c
    gates: Array  # (*batch, K) the previous step's activations of the gates with weights
    #   among (i, f, o), in that order


class Peephole(NamedTuple):
    """Diagonal peephole weights (Gers & Schmidhuber, 2000)."""

    i: Array | None  # (H,) c_{t-1} into the input gate; None without its weights
    f: Array | None  # (H,) c_{t-1} into the forget gate; None without it
    o: Array | None  # (H,) c_t into the output gate; None without it


class LSTMLayerNorm(NamedTuple):
    """Layer-norm parameters of a layer-normalised LSTM (Ba et al., 2016)."""

    inputs: base.LayerNormParams  # scale (G,): normalises x_t @ w_ih
    recurrent: base.LayerNormParams  # scale (G,): normalises h_{t-1} @ w_hh
    cell: base.LayerNormParams  # scale, bias (H,): normalises c_t before tanh


class LSTMParams(NamedTuple):
    """LSTM parameters; G = 4H in PyTorch's gate order (i, f, g, o), less H for each gate
    without weights (``coupled``, ``input_gate``/``forget_gate``/``output_gate=False``),
    e.g. 3H (f, g, o) when ``coupled``. Optional parts are None when their option is off."""

    w_ih: Array  # (I, G)
    w_hh: Array  # (P, G)
    b: Array | None  # (G,) PyTorch's b_ih + b_hh
    w_hr: Array | None  # (H, P) output projection (LSTMP)
    peephole: Peephole | None
    layer_norm: LSTMLayerNorm | None
    w_gg: Array | None = None  # (K, K) gate_recurrence: previous gates -> gates, K = 3H
    #   for (i, f, o), less H for each gate without weights


class LSTMGates(NamedTuple):
    """One step's activations, each (*batch, H) except h (*batch, P); a gate without
    weights (``input_gate=False``, ...) is reported as ones."""

    f: Array  # forget gate: how much of c_{t-1} to keep
    i: Array  # input gate: how much of the candidate to write
    g: Array  # candidate values (tanh)
    o: Array  # output gate: how much of tanh(c_t) to show
    c: Array  # new cell state
    h: Array  # new hidden state / output


@dataclasses.dataclass(frozen=True)
class LSTMConfig(base.CellConfig):
    """Options of an LSTM cell; see ``lstm`` for their meaning."""

    proj_size: int | None = None
    peephole: bool = False
    layer_norm: bool = False
    coupled: bool = False
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    gate_recurrence: bool = False
    forget_bias: float = 1.0
    chrono_init: int | None = None
    gate_activation: Callable = jax.nn.sigmoid
    candidate_activation: Callable = jnp.tanh
    cell_activation: Callable = jnp.tanh
    kind = "lstm"

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    @property
    def blocks(self) -> str:
        """The gates with weights, in their order in w_ih, w_hh and b: "ifgo" at most."""
        weighted = {"i": self.input_gate and not self.coupled, "f": self.forget_gate,
                    "g": True, "o": self.output_gate}
        return "".join(name for name, on in weighted.items() if on)

    @property
    def recurrent_gates(self) -> str:
        """The gates whose previous activations feed ``w_gg`` (gate_recurrence): the
        weighted ones of i, f, o."""
        return self.blocks.replace("g", "")

    @property
    def num_gates(self) -> int:
        return len(self.blocks)

    @property
    def gate_changes(self) -> tuple[str, ...]:
        """The gate options that differ from the standard LSTM, as ``name=value``."""
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        names = ("input_gate", "forget_gate", "output_gate", "gate_recurrence")
        return tuple(f"{name}={getattr(self, name)}" for name in names
                     if getattr(self, name) != defaults[name])

    @property
    def sums_projections(self) -> bool:
        return not self.layer_norm  # layer norm normalises gh_t on its own


@base.cell_factory
def lstm(
    hidden_size: int,
    *,
    proj_size: int | None = None,
    peephole: bool = False,
    layer_norm: bool = False,
    coupled: bool = False,
    input_gate: bool = True,
    forget_gate: bool = True,
    output_gate: bool = True,
    gate_recurrence: bool = False,
    forget_bias: float = 1.0,
    chrono_init: int | None = None,
    gate_activation: str | Callable = "sigmoid",
    candidate_activation: str | Callable | None = None,
    cell_activation: str | Callable | None = None,
    **common,
) -> base.Cell:
    r"""A long short-term memory cell (Hochreiter & Schmidhuber, 1997).

    One step, with σ the ``gate_activation``, φ_g the ``candidate_activation`` and φ_c
    the ``cell_activation`` (both tanh by default):

    .. math::

        f_t &= σ(x_t W_{if} + h_{t-1} W_{hf} + b_f)   \quad\text{forget gate} \\
        i_t &= σ(x_t W_{ii} + h_{t-1} W_{hi} + b_i)   \quad\text{input gate} \\
        g_t &= φ_g(x_t W_{ig} + h_{t-1} W_{hg} + b_g) \quad\text{candidate} \\
        o_t &= σ(x_t W_{io} + h_{t-1} W_{ho} + b_o)   \quad\text{output gate} \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t      \quad\text{long-term memory} \\
        h_t &= o_t \odot φ_c(c_t)                      \quad\text{short-term memory}

    Weights are stored PyTorch's way round for ``x @ w``: ``w_ih`` (I, G) and
    ``w_hh`` (P, G) hold the gates in the order (i, f, g, o), G = 4H; a gate without
    weights (see ``coupled``, ``input_gate``, ``forget_gate``, ``output_gate``) is left
    out, G shrinking by H.

    The options express the eight variants of Greff et al. (2017), "LSTM: A Search
    Space Odyssey", whose vanilla LSTM is ``peephole=True``: NIG ``input_gate=False``,
    NFG ``forget_gate=False``, NOG ``output_gate=False``, NIAF
    ``candidate_activation="identity"``, NOAF ``cell_activation="identity"``, NP
    ``peephole=False``, CIFG ``coupled=True``, FGR ``gate_recurrence=True``.

    Args:
      hidden_size: H, the size of the cell state c.
      proj_size: P; when set, h_t = (o_t ⊙ φ_c(c_t)) @ w_hr with w_hr (H, P), exactly
        as ``torch.nn.LSTM(proj_size=P)`` (Sak et al., 2014).
      peephole: add diagonal peepholes: c_{t-1} into f and i, c_t into o (one (H,)
        vector per gate with weights).
      layer_norm: normalise x_t W_ih, h_{t-1} W_hh and c_t (Ba et al., 2016).
      coupled: CIFG: no input gate, i_t = 1 - f_t (Greff et al., 2017); G = 3H (f, g, o).
        Needs both ``input_gate`` and ``forget_gate``.
      input_gate: False fixes i_t = 1 (Greff's NIG); the gate has no weights.
      forget_gate: False fixes f_t = 1 (NFG, the LSTM of 1997); no weights.
      output_gate: False fixes o_t = 1 (NOG); no weights.
      gate_recurrence: FGR: each gate with weights also reads the previous step's gate
        activations, z_t += [i, f, o]_{t-1} @ w_gg with w_gg (K, K), K = 3H (less H per
        gate without weights): Greff's nine extra recurrent matrices in one. The carry
        is then ``LSTMGateState(h, c, gates (*batch, K))``, gates zero at first.
      bias: learn the bias b (G,); False matches ``torch.nn.LSTM(bias=False)``.
      forget_bias: added to the forget-gate bias at init (Jozefowicz et al., 2015
        recommend 1.0); it is an initial value, not a constant in the math, so
        imported weights run unchanged. Unused without a forget gate.
      chrono_init: T_max, for dependencies up to about T_max steps: the forget-gate bias
        starts at log(u), u ~ U(1, T_max - 1) per unit, and the input-gate bias at its
        negative (Tallec & Ollivier, 2018, "Can recurrent neural networks warp time?").
        Replaces ``forget_bias``; needs ``bias`` and a forget gate.
      init: initializer preset, ``"flax"`` (lecun-normal input kernel, orthogonal
        recurrent blocks, zero bias) or ``"pytorch"`` (uniform ±1/sqrt(H)).
        ``w_gg`` takes the recurrent initializer, one block per gate.
      kernel_init, recurrent_init, bias_init: override the preset's initializers
        (``init(key, shape, dtype)``, see ``lstm_jax.initializers``).
      activation: tanh by default; the default of ``candidate_activation`` and
        ``cell_activation``.
      gate_activation: sigmoid by default; the nonlinearity of f, i and o.
      candidate_activation: φ_g; ``"identity"`` (or ``"linear"``) gives Greff's NIAF.
      cell_activation: φ_c, applied to c_t before the output gate; ``"identity"`` gives
        Greff's NOAF.
      param_dtype: dtype of the parameters and of the carry.
      dtype: compute dtype of the matmuls (e.g. ``jnp.bfloat16``) and of y_t; gates and
        the cell state stay in ``param_dtype``. None computes in ``param_dtype``.

    Returns:
      A ``Cell``. Its carry is ``LSTMState(h (*batch, P), c (*batch, H))``
      (``LSTMGateState`` with ``gate_recurrence``).

    Raises:
      ValueError: ``coupled`` without ``input_gate`` or ``forget_gate``, or
        ``peephole``/``gate_recurrence`` with none of the gates i, f, o.

    >>> import jax, jax.numpy as jnp, lstm_jax as lj
    >>> cell = lj.lstm(6)
    >>> params = cell.init(jax.random.key(0), input_size=5)
    >>> carry = cell.initial_carry(params, batch_shape=(3,))
    >>> carry, y = cell.step(params, carry, jnp.ones((3, 5)))
    >>> y.shape, carry.c.shape
    ((3, 6), (3, 6))
    """
    common = base.common_options(hidden_size, **common)
    config = LSTMConfig(
        proj_size=None if proj_size is None else _checks.positive_int("proj_size", proj_size),
        peephole=_checks.flag("peephole", peephole),
        layer_norm=_checks.flag("layer_norm", layer_norm),
        coupled=_checks.flag("coupled", coupled),
        input_gate=_checks.flag("input_gate", input_gate),
        forget_gate=_checks.flag("forget_gate", forget_gate),
        output_gate=_checks.flag("output_gate", output_gate),
        gate_recurrence=_checks.flag("gate_recurrence", gate_recurrence),
        forget_bias=_checks.finite_float("forget_bias", forget_bias),
        chrono_init=None if chrono_init is None else _checks.positive_int("chrono_init", chrono_init),
        gate_activation=base.resolve_activation("gate_activation", gate_activation),
        candidate_activation=base.resolve_activation(
            "candidate_activation", candidate_activation or common["activation"]),
        cell_activation=base.resolve_activation(
            "cell_activation", cell_activation or common["activation"]),
        **common,
    )
    _check_gates(config)
    return _build(config)


def _check_gates(config: LSTMConfig) -> None:
    """Raise for gate options that cannot be combined, naming both."""
    if config.chrono_init is not None:
        if config.chrono_init < 3:
            raise ValueError(f"`chrono_init` is T_max, the longest dependency, and must be at "
                             f"least 3, got {config.chrono_init}")
        for name in ("bias", "forget_gate"):
            if not getattr(config, name):
                raise ValueError(f"`chrono_init` cannot be combined with `{name}=False`: it "
                                 "initialises the forget-gate bias")
    for name in ("input_gate", "forget_gate"):
        if config.coupled and not getattr(config, name):
            raise ValueError(f"`coupled=True` cannot be combined with `{name}=False`: the "
                             "coupled input gate is i_t = 1 - f_t, which needs both gates")
    for name in ("peephole", "gate_recurrence"):
        if getattr(config, name) and not config.recurrent_gates:
            raise ValueError(f"`{name}=True` cannot be combined with `input_gate=False`, "
                             "`forget_gate=False` and `output_gate=False`: it feeds gates "
                             "and none is left")


def _forget_bias(config: LSTMConfig, b: Array, key: Array, dtype) -> Array:
    """``b`` with the forget-gate bias set: ``forget_bias`` added, or chrono's."""
    H, blocks = config.hidden_size, config.blocks
    block = {name: slice(n * H, (n + 1) * H) for n, name in enumerate(blocks)}
    if config.chrono_init is None:
        return b.at[block["f"]].add(jnp.asarray(config.forget_bias, dtype))
    b_f = jnp.log(jax.random.uniform(key, (H,), dtype, 1.0, config.chrono_init - 1.0))
    b = b.at[block["f"]].set(b_f)
    return b.at[block["i"]].set(-b_f) if "i" in block else b


def cudnn_unsupported(config: LSTMConfig) -> str | None:
    """Why cuDNN's LSTM computes something else than this config, or None when it is the
    same function (PyTorch's plain LSTM: sigmoid gates, tanh, float32)."""
    for option in ("proj_size", "peephole", "layer_norm", "coupled"):
        if getattr(config, option):
            return f"cuDNN's LSTM has no `{option}`"
    if config.gate_changes:
        return f"cuDNN's LSTM has no `{config.gate_changes[0]}`"
    activations = (config.candidate_activation, config.cell_activation)
    if any(a is not jnp.tanh for a in activations) or config.gate_activation is not jax.nn.sigmoid:
        return "cuDNN's LSTM uses sigmoid gates and tanh, no other activations"
    for name, value in (("param_dtype", config.param_dtype), ("dtype", config.dtype)):
        if value is not None and jnp.dtype(value) != jnp.float32:
            return f"jax.experimental.rnn runs float32 only, got `{name}` {jnp.dtype(value)}"
    return None


def cudnn_weights(params: LSTMParams) -> Array:
    """Our params (w_ih (I, 4H), w_hh (H, 4H), b (4H,) or None) -> cuDNN's flat weight
    vector: ``W_ih`` (4H, I), ``W_hh`` (4H, H), then ``b_ih``, ``b_hh`` (4H,), the summed
    bias in ``b_ih``."""
    gates = params.w_ih.shape[1]
    b_ih = params.b if params.b is not None else jnp.zeros(gates, params.w_ih.dtype)
    return jnp.concatenate([params.w_ih.T.ravel(), params.w_hh.T.ravel(), b_ih,
                            jnp.zeros(gates, b_ih.dtype)])


def _build(config: LSTMConfig) -> base.Cell:
    H, P, G = config.hidden_size, config.output_size, config.num_gates * config.hidden_size
    blocks, recurrent = config.blocks, config.recurrent_gates
    kernel_init, recurrent_init, bias_init = base.initializers_of(config, config.num_gates)
    gate_init = base.initializers_of(config, max(len(recurrent), 1))[1]
    pdt, dtype = config.param_dtype, config.dtype
    sigma = config.gate_activation
    phi_g, phi_c = config.candidate_activation, config.cell_activation

    def init(key, input_size):
        k = jax.random.split(key, 7)
        b = None
        if config.bias:
            b = bias_init(k[2], (G,), pdt)
            if config.forget_gate:
                b = _forget_bias(config, b, k[6], pdt)
        peephole = None
        if config.peephole:
            vectors = (bias_init(kk, (H,), pdt) for kk in jax.random.split(k[4], 3))
            peephole = Peephole(*(v if name in recurrent else None
                                  for name, v in zip("ifo", vectors)))
        norm = None
        if config.layer_norm:
            norm = LSTMLayerNorm(
                inputs=base.LayerNormParams(jnp.ones((G,), pdt), None),
                recurrent=base.LayerNormParams(jnp.ones((G,), pdt), None),
                cell=base.LayerNormParams(jnp.ones((H,), pdt), jnp.zeros((H,), pdt)),
            )
        K = len(recurrent) * H
        return LSTMParams(
            w_ih=kernel_init(k[0], (input_size, G), pdt),
            w_hh=recurrent_init(k[1], (P, G), pdt),
            b=b,
            w_hr=kernel_init(k[3], (H, P), pdt) if config.proj_size else None,
            peephole=peephole,
            layer_norm=norm,
            w_gg=gate_init(k[5], (K, K), pdt) if config.gate_recurrence else None,
        )

    def initial_carry(params, batch_shape):
        dt = params.w_hh.dtype
        h, c = jnp.zeros((*batch_shape, P), dt), jnp.zeros((*batch_shape, H), dt)
        if config.gate_recurrence:
            return LSTMGateState(h, c, jnp.zeros((*batch_shape, len(recurrent) * H), dt))
        return LSTMState(h, c)

    def project_inputs(params, xs):
        gx = base.matmul(xs, params.w_ih, dtype)
        if params.layer_norm is not None:
            gx = base.layer_norm(gx, params.layer_norm.inputs)
        return base.add_bias(gx, params.b)

    def combine(params, state, gx_t, gh):
        if params.layer_norm is not None:
            gh = base.layer_norm(gh, params.layer_norm.recurrent)
        z = dict(zip(blocks, jnp.split(gx_t + gh, len(blocks), axis=-1)))
        if params.w_gg is not None:  # FGR: the previous gates into every gate
            zr = base.matmul(state.gates, params.w_gg, dtype)
            for name, part in zip(recurrent, jnp.split(zr, len(recurrent), axis=-1)):
                z[name] = z[name] + part
        c_prev = state.c
        peep = params.peephole
        one = jnp.ones_like(c_prev)

        def gate(name, c):  # σ(z + p ⊙ c), or the constant 1 without weights
            if name not in z:
                return one
            zz = z[name]
            if peep is not None:
                zz = zz + base.broadcast_like(getattr(peep, name), c) * c
            return sigma(zz)

        f = gate("f", c_prev)
        i = 1.0 - f if config.coupled else gate("i", c_prev)
        g = phi_g(z["g"])
        c = f * c_prev + i * g
        o = gate("o", c)
        c_shown = c if params.layer_norm is None else base.layer_norm(c, params.layer_norm.cell)
        h = o * phi_c(c_shown)
        if params.w_hr is not None:
            h = base.matmul(h, params.w_hr, dtype)
        new_state = LSTMState(h=h.astype(state.h.dtype), c=c.astype(state.c.dtype))
        if params.w_gg is not None:
            weighted = dict(i=i, f=f, o=o)
            gates = jnp.concatenate([weighted[n] for n in recurrent], axis=-1)
            new_state = LSTMGateState(*new_state, gates.astype(state.gates.dtype))
        y_t = h.astype(base.output_dtype(dtype, state.h.dtype))
        return new_state, y_t, LSTMGates(f=f, i=i, g=g, o=o, c=c, h=h)

    return base.build_cell(config, init, combine, project_inputs=project_inputs,
                           initial_carry=initial_carry,
                           cudnn_weights=None if cudnn_unsupported(config) else cudnn_weights)
